"""mdhub: a message-driven master data hub.

Source systems publish candidate changes to Kafka; the hub validates them, merges every source of an
entity into one versioned golden record and publishes it back to a compacted topic, with read views
in Redis.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
