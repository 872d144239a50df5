"""The local development stack: Apache Kafka (KRaft, one node) and Redis, run without Docker.

Both servers run as detached child processes that outlive the command which started them; their
configuration, data, logs and pid files live in ``StackSettings.state_dir``. Kafka's jars come from
Maven Central (fetched once with ``mvn``) unless ``KAFKA_HOME`` names a Kafka distribution.

Example::

    from mdhub.settings import load_settings
    from mdhub.stack import stack_down, stack_up

    status = stack_up(load_settings().stack, report=print)
    print(status.bootstrap_servers, status.redis_url)
    stack_down(load_settings().stack)

Every failure is a :class:`mdhub.errors.StackError` whose message says what to do.
"""

from mdhub.stack.classpath import kafka_classpath
from mdhub.stack.lifecycle import stack_down, stack_status, stack_up
from mdhub.stack.status import Report, ServerStatus, StackStatus

__all__ = [
    "Report",
    "ServerStatus",
    "StackStatus",
    "kafka_classpath",
    "stack_down",
    "stack_status",
    "stack_up",
]
