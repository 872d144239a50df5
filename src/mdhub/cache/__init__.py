"""Read views of golden records (Redis), written with a compare-and-set on version.

The port is :class:`GoldenCache`; :class:`RedisGoldenCache` implements it on Redis and
:class:`mdhub.testing.InMemoryGoldenCache` in memory for tests.
"""

from __future__ import annotations

from mdhub.cache.views import GoldenCache, GoldenView, RedisGoldenCache

__all__ = ["GoldenCache", "GoldenView", "RedisGoldenCache"]
