"""Publishing files: every line is checked, every bad line reported by number, good lines encoded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from mdhub.domain.model import EntityModel
from mdhub.domain.records import Op
from mdhub.modelfile import load_model
from mdhub.publishing import ParsedFile, parse_records, read_file
from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.serde.mapping import change_from_avro

REPO = Path(__file__).resolve().parents[2]
HUB = load_model(REPO / "config" / "model.yaml")
CATALOG = SchemaCatalog.load(REPO / "schemas")
CUSTOMER: EntityModel = HUB.entity("customer")
PRODUCT: EntityModel = HUB.entity("product")
NOW = dt.datetime(2026, 4, 1, 10, 30, 15, 123456, tzinfo=dt.UTC)


def codec(entity: EntityModel) -> AvroCodec:
    return CATALOG.codec(f"mdhub.{entity.name}.CandidateChange")


def jsonl(tmp_path: Path, *lines: Any, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def parse(
    path: Path, entity: EntityModel = CUSTOMER, source: str = "crm", fmt: str | None = None
) -> ParsedFile:
    return parse_records(entity, source, read_file(path, fmt), codec(entity), now=NOW)


def errors_by_line(parsed: ParsedFile) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for error in parsed.errors:
        out.setdefault(error.line, []).append(error.message)
    return out


GRACE = {
    "source_key": "C-1",
    "source_version": 7,
    "occurred_at": "2026-01-05T09:00:00+01:00",
    "first_name": "Grace",
    "last_name": "Hopper",
    "birth_date": "1906-12-09",
    "tags": ["vip", "newsletter"],
    "lifetime_value": 12,
}


# -- good lines --------------------------------------------------------------------------------------


def test_valid_json_lines_are_encoded(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GRACE, {"source_key": "C-2", "op": "DELETE", "change_id": "del-1"})

    parsed = parse(path)

    assert parsed.errors == []
    assert [line for line, _, _ in parsed.changes] == [1, 2]
    _, grace, data = parsed.changes[0]
    assert grace.source_ref == "crm:C-1"
    assert grace.entity == "customer"
    assert grace.op is Op.UPSERT
    assert grace.source_version == 7
    assert grace.occurred_at == dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    assert grace.attributes == {
        "first_name": "Grace",
        "last_name": "Hopper",
        "birth_date": dt.date(1906, 12, 9),
        "tags": ("vip", "newsletter"),
        "lifetime_value": 12.0,
    }
    assert data[:10] == codec(CUSTOMER).header
    assert change_from_avro(codec(CUSTOMER).decode(data)) == grace
    _, delete, _ = parsed.changes[1]
    assert delete.op is Op.DELETE
    assert delete.change_id == "del-1"
    assert delete.attributes == {}


def test_blank_lines_are_skipped_but_keep_the_numbering(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GRACE, "", "   ", {**GRACE, "source_key": "C-4"})

    parsed = parse(path)

    assert parsed.errors == []
    assert [line for line, _, _ in parsed.changes] == [1, 4]


def test_csv_rows_with_lists_numbers_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "source_key,source_version,first_name,last_name,tags,lifetime_value,city\n"
        "E-1,3,Margaret,Hamilton,apollo| nasa |,8300,\n"
        'E-2,4,Edsger,Dijkstra,,420.75,"Amsterdam, NL"\n',
        encoding="utf-8",
    )

    parsed = parse(path, source="erp")

    assert parsed.errors == []
    (line1, first, _), (line2, second, _) = parsed.changes
    assert (line1, line2) == (2, 3)  # the header is line 1
    assert first.attributes == {
        "first_name": "Margaret",
        "last_name": "Hamilton",
        "tags": ("apollo", "nasa"),
        "lifetime_value": 8300.0,
    }
    assert "city" not in first.attributes  # an empty cell is an absent value
    assert second.attributes["city"] == "Amsterdam, NL"
    assert "tags" not in second.attributes
    assert (first.source_version, second.source_version) == (3, 4)


def test_csv_from_a_spreadsheet_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfsource_key,first_name,last_name\r\nX-1,Ada,Lovelace\r\n")

    parsed = parse(path)

    assert parsed.errors == []
    assert parsed.changes[0][1].source_key == "X-1"
    assert parsed.changes[0][1].attributes == {"first_name": "Ada", "last_name": "Lovelace"}


def test_format_override_reads_csv_from_any_suffix(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("source_key,first_name\nK-1,Ada\n", encoding="utf-8")

    parsed = parse(path, fmt="csv")

    assert parsed.errors == []
    assert parsed.changes[0][1].attributes == {"first_name": "Ada"}


def test_default_versions_make_later_lines_and_later_publishes_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = jsonl(tmp_path, *({"source_key": "K", "first_name": name} for name in "ABC"))
    clock = iter([1_800_000_000.000, 1_800_000_005.250])
    monkeypatch.setattr("mdhub.publishing.time.time", lambda: next(clock))

    first = parse(path)
    second = parse(path)

    versions = [c.source_version for _, c, _ in first.changes]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3
    later = [c.source_version for _, c, _ in second.changes]
    assert min(later) > max(versions)
    # without occurred_at, the publishing moment (to the second) is the event time
    assert {c.occurred_at for _, c, _ in first.changes} == {NOW.replace(microsecond=0)}
    # every change gets its own id
    assert len({c.change_id for _, c, _ in first.changes + second.changes}) == 6


# -- bad lines ---------------------------------------------------------------------------------------


def test_every_bad_line_is_reported_with_its_number_and_none_is_returned(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        GRACE,  # 1 ok
        '{"source_key": "C-2", "first_name": ',  # 2 bad JSON
        {"source_key": "C-3", "nickname": "Amazing Grace"},  # 3 unknown column
        {"source_key": "C-4", "birth_date": "1906-13-45"},  # 4 bad date
        {"first_name": "Nobody"},  # 5 missing source_key
        {"source_key": "", "first_name": "Empty"},  # 6 empty source_key
        {"source_key": "C-7", "occurred_at": "2026-01-05T09:00:00"},  # 7 no time zone
        {"source_key": "C-8", "source_version": "v2"},  # 8 bad version
        {"source_key": "C-9", "op": "upsert-or-not"},  # 9 bad op
        '["a", "list"]',  # 10 not an object
        {"source_key": "C-11", "first_name": True},  # 11 not text
        {"source_key": "C-12", "tags": "vip"},  # 12 ok: a|b text is a list in JSON too
    )

    parsed = parse(path)

    assert [line for line, _, _ in parsed.changes] == [1, 12]
    errors = errors_by_line(parsed)
    assert sorted(errors) == list(range(2, 12))
    assert "not valid JSON" in errors[2][0]
    assert "unknown field(s) nickname" in errors[3][0]
    assert "first_name, last_name, email" in errors[3][0]  # names the accepted attributes
    assert errors[4][0].startswith("birth_date='1906-13-45'")
    assert errors[5] == ["source_key is missing"]
    assert errors[6] == ["source_key is missing"]
    assert "time zone" in errors[7][0]
    assert errors[8] == ["source_version='v2': expected an integer"]
    assert errors[9] == ["op='upsert-or-not': expected upsert or delete"]
    assert errors[10] == ["expected a JSON object"]
    assert errors[11] == ["first_name=True: expected text"]
    assert str(parsed.errors[0]).startswith("line 2: ")


def test_a_line_with_several_problems_reports_them_all(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"shoe_size": 44, "birth_date": "yesterday", "source_version": None})

    parsed = parse(path)

    assert parsed.changes == []
    messages = errors_by_line(parsed)[1]
    assert len(messages) == 3, messages
    assert any("unknown field(s) shoe_size" in m for m in messages)
    assert "source_key is missing" in messages
    assert any(m.startswith("birth_date='yesterday'") for m in messages)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("12.5", "weight_grams='12.5'"),
        ("heavy", "weight_grams='heavy'"),
        (12.5, "weight_grams=12.5: expected an integer"),
        (True, "weight_grams=True: expected an integer"),
        (2**70, "does not fit mdhub.product.CandidateChange"),
    ],
)
def test_bad_integers_are_reported(tmp_path: Path, value: Any, fragment: str) -> None:
    path = jsonl(tmp_path, {"source_key": "P-1", "sku": "P-1", "weight_grams": value})

    parsed = parse(path, entity=PRODUCT, source="erp")

    assert parsed.changes == []
    assert {e.line for e in parsed.errors} == {1}
    assert any(fragment in e.message for e in parsed.errors), parsed.errors


def test_integers_in_text_are_accepted(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"source_key": "P-1", "weight_grams": " 250 ", "price": "9.5"})

    parsed = parse(path, entity=PRODUCT, source="erp")

    assert parsed.errors == []
    assert parsed.changes[0][1].attributes == {"weight_grams": 250, "price": 9.5}


def test_bad_csv_cells_and_extra_values_are_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "source_key,birth_date,lifetime_value\n"
        "E-1,1950-01-01,10\n"  # line 2 ok
        "E-2,01/02/1950,10\n"  # line 3 bad date
        "E-3,1950-01-01,a lot\n"  # line 4 bad number
        ",1950-01-01,1\n"  # line 5 missing key
        "E-6,1950-01-01,1,surplus\n",  # line 6 more values than columns
        encoding="utf-8",
    )

    parsed = parse(path)

    assert [line for line, _, _ in parsed.changes] == [2]
    errors = errors_by_line(parsed)
    assert sorted(errors) == [3, 4, 5, 6]
    assert errors[3][0].startswith("birth_date='01/02/1950'")
    assert errors[4][0].startswith("lifetime_value='a lot'")
    assert errors[5] == ["source_key is missing"]
    assert "surplus" in errors[6][0]


def test_a_file_that_is_not_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"source_key": "A"}\n{"source_key": "B", "first_name": "Jos\xe9"}\n')

    parsed = parse(path)

    assert parsed.changes == []
    assert [e.line for e in parsed.errors] == [2]
    assert "UTF-8" in parsed.errors[0].message


def test_unknown_source_is_reported(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GRACE)

    parsed = parse(path, source="mainframe")

    assert parsed.errors[0].line == 0
    assert "'mainframe' may not publish customer" in parsed.errors[0].message
    assert "crm, erp, webshop" in parsed.errors[0].message


def test_the_shipped_sample_files_parse(tmp_path: Path) -> None:
    for path in sorted((REPO / "config" / "sample").glob("customer.*")):
        source = path.name.split(".")[1]

        parsed = parse(path, source=source)

        assert parsed.errors == [], (path, parsed.errors)
        assert parsed.changes, path
