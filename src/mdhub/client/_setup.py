"""What a publisher or subscriber needs from the settings: the entity type and the schema catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mdhub.domain.model import EntityModel
from mdhub.errors import ConfigError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings, load_settings

__all__ = ["HubSetup", "load_setup"]

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class HubSetup:
    """The settings (with the caller's overrides), one entity type and the schema catalog."""

    settings: Settings
    entity: EntityModel
    catalog: SchemaCatalog


def load_setup(
    entity: str,
    settings: Settings | None,
    *,
    bootstrap_servers: str | None = None,
    namespace: str | None = None,
) -> HubSetup:
    """Load the settings (``MDHUB_*`` when none are given), the entity model and the schemas.

    Raises:
        ConfigError: a setting is invalid, the entity type is unknown, or the model file is missing
            or broken (:class:`~mdhub.errors.ModelError`).
        SchemaError: the schema directory is missing or holds a broken schema.
    """
    base = settings if settings is not None else load_settings()
    if bootstrap_servers is not None:
        kafka = base.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        base = base.model_copy(update={"kafka": kafka})
    if namespace is not None:
        if not _NAMESPACE.match(namespace):
            raise ConfigError(f"namespace {namespace!r} must match {_NAMESPACE.pattern}")
        base = base.model_copy(update={"namespace": namespace})
    model = load_model(base.model_file)
    try:
        entity_model = model.entity(entity)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    return HubSetup(base, entity_model, SchemaCatalog.load(base.schemas_dir))
