"""附件4–6 unit lists as CSV: one request per unit, errors per row, all or nothing by default."""

from __future__ import annotations

import pytest

from pki.enums import AccessMode, RequestState
from pki.errors import ImportRowsError, PermissionDeniedError, ValidationError
from pki.services import Actor, Service
from tests.support.data import batch_defaults, make_uscc

HEADER = "单位名称,统一社会信用代码,行业,地点,单位性质,近三年综合能源消费量,主要用能品种"


def row(name: str, code: str) -> str:
    return f'{name},{code},钢铁,拉萨市,国有,"1.2万吨标准煤",电力;煤炭'


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode(encoding)


def codes(n: int) -> list[str]:
    return [make_uscc("540102", f"MA6T{i:04d}") for i in range(n)]


def defaults() -> dict[str, object]:
    return batch_defaults(
        province="西藏", address="拉萨市城关区", postal_address="拉萨市城关区", postal_code="850000"
    )


def test_each_unit_becomes_a_request(service: Service, people: dict[str, Actor]) -> None:
    c = codes(3)
    data = csv_bytes(row("西藏某水泥厂", c[0]), row("西藏某电厂", c[1]), row("西藏某矿业", c[2]))
    result = service.bulk.import_units(
        data,
        actor=people["clerk"],
        defaults=defaults(),
        label="西藏 第一批",
        access_mode=AccessMode.BATCH,
        source_name="xizang.csv",
    )
    assert result.total == 3 and len(result.request_ids) == 3 and not result.rejected
    reqs = service.requests.find()
    assert [r.credential_number for r in reqs] == c
    first = reqs[0]
    assert first.state is RequestState.ENTERED and first.batch_id == result.batch_id
    assert (first.industry, first.location, first.ownership_type) == ("钢铁", "拉萨市", "国有")
    assert (first.energy_consumption, first.main_energy_types) == ("1.2万吨标准煤", "电力;煤炭")
    assert first.province == "西藏" and first.handler_name == "李四"
    assert [h.action for h in service.audit.recent(limit=10)][-1] == "batch.import"
    assert service.audit.verify().ok


def test_one_bad_row_imports_nothing_and_names_line_and_field(
    service: Service, people: dict[str, Actor]
) -> None:
    c = codes(3)
    bad = c[1][:-1] + ("0" if c[1][-1] != "0" else "1")
    data = csv_bytes(row("甲厂", c[0]), row("乙厂", bad), row("丙厂", c[2]))
    audit_before = service.audit.verify().records
    with pytest.raises(ImportRowsError) as info:
        service.bulk.import_units(data, actor=people["clerk"], defaults=defaults(), label="b")
    err = info.value
    assert err.total == 3 and [r.row for r in err.rows] == [3]
    assert [e.field for e in err.rows[0].errors] == ["credential_number"]
    assert "line 3" in err.message
    assert service.requests.find() == []
    assert service.audit.verify().records == audit_before


def test_skip_invalid_imports_the_good_rows(service: Service, people: dict[str, Actor]) -> None:
    c = codes(3)
    data = csv_bytes(row("甲厂", c[0]), row("", c[1]), row("丙厂", c[2]))
    result = service.bulk.import_units(
        data, actor=people["clerk"], defaults=defaults(), label="b", skip_invalid=True
    )
    assert len(result.request_ids) == 2 and [r.row for r in result.rejected] == [3]
    assert result.rejected[0].errors[0].field == "unit_name"


def test_rows_may_override_batch_defaults(service: Service, people: dict[str, Actor]) -> None:
    c = codes(2)
    header = HEADER + ",法定代表人,validity_months"
    data = csv_bytes(row("甲厂", c[0]) + ",赵六,24", row("乙厂", c[1]) + ",,", header=header)
    service.bulk.import_units(data, actor=people["clerk"], defaults=defaults(), label="b")
    a, b = service.requests.find()
    assert (a.legal_representative, a.validity_months) == ("赵六", 24)
    assert (b.legal_representative, b.validity_months) == ("张三", 12)


def test_gb18030_file_from_chinese_excel(service: Service, people: dict[str, Actor]) -> None:
    c = codes(1)
    data = csv_bytes(row("西藏某水泥厂", c[0]), encoding="gb18030")
    service.bulk.import_units(data, actor=people["clerk"], defaults=defaults(), label="b")
    assert service.requests.find()[0].unit_name == "西藏某水泥厂"


def test_utf8_bom_is_accepted(service: Service, people: dict[str, Actor]) -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(row("甲厂", codes(1)[0]))
    assert (
        len(
            service.bulk.import_units(data, actor=people["clerk"], defaults=defaults(), label="b").request_ids
        )
        == 1
    )


def test_duplicate_unit_in_the_file(service: Service, people: dict[str, Actor]) -> None:
    c = codes(1)
    with pytest.raises(ImportRowsError) as info:
        service.bulk.import_units(
            csv_bytes(row("甲厂", c[0]), row("甲厂二", c[0])),
            actor=people["clerk"],
            defaults=defaults(),
            label="b",
        )
    assert info.value.rows[0].row == 3 and "line 2" in info.value.rows[0].errors[0].message


@pytest.mark.parametrize(
    ("header", "expect"),
    [
        ("单位名称,行业", "missing column '统一社会信用代码'"),
        (HEADER + ",备注", "unknown column '备注'"),
        ("单位名称,统一社会信用代码,unit_name", "given twice"),
    ],
    ids=["missing-uscc", "unknown", "twice"],
)
def test_bad_headers(service: Service, people: dict[str, Actor], header: str, expect: str) -> None:
    with pytest.raises(ValidationError) as info:
        service.bulk.import_units(
            csv_bytes("a,b", header=header), actor=people["clerk"], defaults=defaults(), label="b"
        )
    assert expect in info.value.message


def test_ragged_row_and_empty_file(service: Service, people: dict[str, Actor]) -> None:
    with pytest.raises(ImportRowsError) as info:
        service.bulk.import_units(
            csv_bytes("甲厂," + codes(1)[0]), actor=people["clerk"], defaults=defaults(), label="b"
        )
    assert info.value.rows[0].errors[0].field == "row"
    with pytest.raises(ValidationError, match="empty"):
        service.bulk.import_units(b"", actor=people["clerk"], defaults=defaults(), label="b")
    with pytest.raises(ValidationError, match="no data rows"):
        service.bulk.import_units(csv_bytes(), actor=people["clerk"], defaults=defaults(), label="b")


def test_only_entry_clerks_import(service: Service, people: dict[str, Actor]) -> None:
    with pytest.raises(PermissionDeniedError):
        service.bulk.import_units(
            csv_bytes(row("甲厂", codes(1)[0])), actor=people["reviewer"], defaults=defaults(), label="b"
        )


def test_province_must_match_every_unit_code(service: Service, people: dict[str, Actor]) -> None:
    beijing = make_uscc("110101", "12345670")
    with pytest.raises(ImportRowsError) as info:
        service.bulk.import_units(
            csv_bytes(row("甲厂", codes(1)[0]), row("乙厂", beijing)),
            actor=people["clerk"],
            defaults=defaults(),
            label="b",
        )
    assert [(r.row, r.errors[0].field) for r in info.value.rows] == [(3, "province")]
