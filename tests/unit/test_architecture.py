"""The domain is pure: it imports only the standard library and its own package.

No Kafka, faust, fastavro, Redis, pydantic, YAML or HTTP client reaches ``mdhub.domain``; adapters
depend on the domain, never the other way round.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "mdhub" / "domain"
PACKAGE = "mdhub.domain"
# DESIGN.md allows pure matching libraries in the domain (comparators), and the summaries are
# written with orjson (a JSON codec, no I/O); nothing else.
PURE_THIRD_PARTY = frozenset({"rapidfuzz", "jellyfish", "phonenumbers", "pycountry", "orjson"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(DOMAIN).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) ``from ... import``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def _allowed(name: str) -> bool:
    top = name.split(".", 1)[0]
    return (
        name == PACKAGE
        or name.startswith(PACKAGE + ".")
        or top in sys.stdlib_module_names
        or top in PURE_THIRD_PARTY
    )


def impure_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import in ``source`` that leaves the standard library and ``mdhub.domain``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [_resolve(module, is_package, node.level, node.module)]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        line = getattr(node, "lineno", 0)
        found.extend(f"line {line}: {name}" for name in names if not _allowed(name))
    return found


DOMAIN_FILES = sorted(DOMAIN.rglob("*.py"))


def test_the_domain_modules_are_found() -> None:
    names = {_module_name(path) for path in DOMAIN_FILES}

    assert {
        "mdhub.domain",
        "mdhub.domain.model",
        "mdhub.domain.merge",
        "mdhub.domain.survivorship",
        "mdhub.domain.validation",
        "mdhub.domain.records",
    } <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(DOMAIN)))
def test_domain_module_imports_only_stdlib_and_the_domain(path: Path) -> None:
    source = path.read_text(encoding="utf-8")

    assert impure_imports(source, _module_name(path), _is_package(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import fastavro",
        "import fastavro.schema",
        "from fastavro import parse_schema",
        "import yaml",
        "from pydantic import BaseModel",
        "import redis.asyncio as redis",
        "from confluent_kafka import Producer",
        "import faust",
        "import httpx",
        "from fastapi import FastAPI",
        "from mdhub.serde.catalog import SchemaCatalog",
        "from mdhub import settings",
        "import mdhub.errors",
        "from ..serde import mapping",
        "from .. import cli",
        "def f():\n    import aiokafka\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mdhub.kafka import admin\n",
        "import importlib\nimportlib.import_module('fastavro')\n",
        "__import__('yaml')",
    ],
)
def test_the_check_catches_an_impure_import(source: str) -> None:
    assert impure_imports(source, "mdhub.domain.merge") != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import datetime as dt",
        "from collections.abc import Mapping",
        "import uuid, hashlib, json, re",
        "from mdhub.domain.model import EntityModel",
        "from mdhub.domain import records",
        "from . import records",
        "from .model import Rule",
        "from rapidfuzz.distance import JaroWinkler",
    ],
)
def test_the_check_allows_pure_imports(source: str) -> None:
    assert impure_imports(source, "mdhub.domain.merge") == []


def test_relative_imports_resolve_from_a_package_init() -> None:
    # in mdhub/domain/__init__.py, "from .merge" is mdhub.domain.merge and ".." is mdhub
    assert impure_imports("from .merge import apply_change", "mdhub.domain", True) == []
    assert impure_imports("from ..serde import catalog", "mdhub.domain", True) == [
        "line 1: mdhub.serde"
    ]
