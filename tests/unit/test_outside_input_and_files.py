"""Small pure helpers of issue 14: spreadsheet-safe cells, JSON limits, id ranges, atomic files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pki.cells import safe_cell, safe_row
from pki.errors import NotFoundError, ValidationError
from pki.files import atomic_text, write_atomic
from pki.ids import MAX_ID, id_bound, known_id
from pki.json_input import MAX_DEPTH, depth_of, parse_object


@pytest.mark.parametrize(
    ("cell", "safe"),
    [("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("+1", "'+1"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("北京某电厂", "北京某电厂"), ("a=b", "a=b"), ("", ""), (-5, -5), (None, None)],
    ids=["equals", "plus", "minus", "at", "tab", "cr", "chinese", "inner-equals", "empty", "negative-int", "none"],
)  # fmt: skip
def test_cells_a_spreadsheet_would_run_are_quoted(cell: object, safe: object) -> None:
    assert safe_cell(cell) == safe
    assert safe_row(["ok", cell]) == ["ok", safe]


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert depth_of(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert depth_of(b'"\\"[[["') == 0
    assert depth_of(b"[" * 100_000) == 100_000  # counted without recursion


def test_json_objects_within_limits_parse() -> None:
    assert parse_object('\ufeff{"单位名称": "某单位"}'.encode(), source="a.json") == {"单位名称": "某单位"}
    at_limit = b'{"x": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"  # MAX_DEPTH deep in all
    assert set(parse_object(at_limit, source="a.json")) == {"x"}
    with pytest.raises(ValidationError, match="nested deeper than"):
        parse_object(b'{"x": [' + at_limit + b"]}", source="a.json")


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"[" * 100_000 + b"]" * 100_000, "nested deeper than"), (b'{"a": "' + b"x" * 1_048_576 + b'"}', "larger than"),
     (b"[1, 2]", "expected a JSON object"), (b"{'a': 1}", "not readable JSON"), (b"\xff\xfe{}", "not readable JSON")],
    ids=["deep", "large", "array", "not-json", "not-utf8"],
)  # fmt: skip
def test_json_outside_limits_is_a_validation_error_naming_the_source(data: bytes, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_object(data, source="defaults.json", field="defaults")
    [error] = info.value.errors
    assert error.field == "defaults" and error.message.startswith("defaults.json: ") and why in error.message


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, 2**63, 2**64, -(2**70), 10**4000, True])
def test_ids_outside_the_columns_are_not_found(value: int) -> None:
    with pytest.raises(NotFoundError) as info:
        known_id(value)
    assert info.value.message.endswith("not found") and len(info.value.message) < 80


def test_ids_inside_the_columns_pass() -> None:
    assert [known_id(1), known_id(MAX_ID)] == [1, MAX_ID]
    assert [id_bound(None, "after_id"), id_bound(0, "after_id"), id_bound(MAX_ID, "after_id")] == [
        None,
        0,
        MAX_ID,
    ]
    with pytest.raises(ValidationError, match="after_id: must be a number"):
        id_bound(MAX_ID + 1, "after_id")


def test_write_atomic_replaces_the_file_with_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "test.crl"
    target.write_bytes(b"old" * 1000)
    old_umask = os.umask(0o027)
    try:
        write_atomic(target, b"new")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["test.crl"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "plan.csv"
    target.write_text("old report\n", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_text(target, encoding="utf-8-sig", newline="") as f:
        f.write("half a new report")
        raise RuntimeError("the plan failed")
    assert target.read_text(encoding="utf-8") == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.csv"]


def test_a_missing_directory_names_the_target(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        write_atomic(tmp_path / "missing" / "ee.pem", b"x")
    assert info.value.filename == str(tmp_path / "missing" / "ee.pem")
