"""Shared test configuration."""

from __future__ import annotations

import os

# Tests build their settings explicitly; a developer's MDHUB_* environment must not leak in.
for _key in [k for k in os.environ if k.startswith("MDHUB_") and not k.startswith("MDHUB_TEST_")]:
    del os.environ[_key]
