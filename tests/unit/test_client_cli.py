"""``mdhub publish --check-rules``: the SDK's checks from the command line, with no broker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdhub.cli import main


def flat(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def test_check_rules_lists_every_rule_problem_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "customers.jsonl"
    path.write_text(
        '{"source_key": "C-1", "first_name": "Grace", "last_name": "Hopper", "country": "Germany"}\n'
        '{"source_key": "C-2", "first_name": "Alan", "email": "no-at-sign"}\n'
        '{"source_key": "C-3", "first_name": "Ada", "last_name": "L", "loyalty_tier": "diamond"}\n',
        encoding="utf-8",
    )
    args = ["publish", "--dry-run", "--entity", "customer", "--source", "crm", str(path)]

    assert main(args) == 0  # without --check-rules the rules are the hub's to check
    capsys.readouterr()
    assert main([*args, "--check-rules"]) == 1

    err = flat(capsys.readouterr().err)
    assert f"{path}: line 2: last_name is required [REQUIRED]" in err
    assert f"{path}: line 2: email 'no-at-sign' does not match" in err
    assert f"{path}: line 3: loyalty_tier 'diamond' is not one of" in err
    assert "line 1:" not in err  # "Germany" is a country: the hub standardizes it to DE
    assert "3 problem(s): nothing was sent" in err
