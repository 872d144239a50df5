"""The REST read API (FastAPI): golden records and cross-references from the read views."""

from __future__ import annotations

from mdhub.api.app import PROBLEM_JSON, Problem, XrefOut, create_app

__all__ = ["PROBLEM_JSON", "Problem", "XrefOut", "create_app"]
