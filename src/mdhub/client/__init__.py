"""The Python SDK of mdhub: publish candidate changes, subscribe to golden records.

Producers (source systems)::

    from mdhub.client import Publisher

    with Publisher("customer", "crm") as publisher:
        publisher.publish("C-1001", {"first_name": "Grace", "last_name": "Hopper"})

Each record is checked against the entity model and the Avro contract before it is sent; a bad one
raises :class:`mdhub.errors.ValidationError` listing every problem. :class:`AsyncPublisher` is the
asyncio variant.

Consumers::

    from mdhub.client import Subscriber, Tombstone

    with Subscriber("customer", "my-system", from_beginning=True) as subscriber:
        for record in subscriber:  # GoldenRecord or Tombstone
            ...

Offsets are committed only after a record was processed, so nothing is skipped when a consumer
fails (at-least-once). Settings come from the ``MDHUB_*`` environment unless given. Errors derive
from :class:`mdhub.errors.MdhubError`.
"""

from mdhub.client._async import AsyncPublisher
from mdhub.client._delivery import Delivery, PendingDelivery, PublishStats
from mdhub.client._publisher import Publisher
from mdhub.client._records import Received, Rejection, Tombstone
from mdhub.client._subscriber import Retry, Subscriber
from mdhub.domain.records import ChangeEvent, GoldenRecord, GoldenStatus, Reason

__all__ = [
    "AsyncPublisher",
    "ChangeEvent",
    "Delivery",
    "GoldenRecord",
    "GoldenStatus",
    "PendingDelivery",
    "PublishStats",
    "Publisher",
    "Reason",
    "Received",
    "Rejection",
    "Retry",
    "Subscriber",
    "Tombstone",
]
