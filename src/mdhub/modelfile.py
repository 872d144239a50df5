"""Load the entity-model file (YAML) and validate it."""

from __future__ import annotations

from pathlib import Path

import yaml

from mdhub.domain.model import HubModel, parse_model
from mdhub.errors import ModelError

__all__ = ["load_model"]


def load_model(path: Path) -> HubModel:
    """Read and validate the model file at ``path``.

    Raises:
        ModelError: the file is missing, not YAML, or breaks the model's rules; the message names
            the file, the key and what is accepted.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"{path}: entity-model file not found; set MDHUB_MODEL to its path "
            "(the project ships config/model.yaml)"
        ) from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the entity-model file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML: {exc}") from exc
    return parse_model(data, origin=str(path))
