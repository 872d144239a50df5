"""Errors raised by the pure domain; re-exported (with the rest of the tree) by ``mdhub.errors``."""

from __future__ import annotations

__all__ = ["ConfigError", "MdhubError", "ModelError"]


class MdhubError(Exception):
    """Root of every error mdhub raises on purpose."""


class ConfigError(MdhubError):
    """Settings are invalid; the message names the setting and what is accepted."""


class ModelError(ConfigError):
    """The entity-model file is invalid; the message names the file, the key and what is accepted."""
