"""What every command needs, built once per process from the settings (the composition root)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from rich.console import Console

from mdhub.domain.model import EntityModel, HubModel
from mdhub.errors import ConfigError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings

__all__ = ["Context", "err_console"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Context:
    """Settings plus the lazily loaded model and schema catalog."""

    settings: Settings
    console: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    @cached_property
    def model(self) -> HubModel:
        return load_model(self.settings.model_file)

    @cached_property
    def catalog(self) -> SchemaCatalog:
        return SchemaCatalog.load(self.settings.schemas_dir)

    def entity(self, name: str) -> EntityModel:
        """Return the entity type or raise a ConfigError naming the known ones."""
        try:
            return self.model.entity(name)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None

    def entities(self, name: str | None) -> list[EntityModel]:
        """One entity type (when named) or all of them."""
        return [self.entity(name)] if name else list(self.model.entities.values())


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum``, or a clear usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse
