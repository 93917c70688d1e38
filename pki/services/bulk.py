"""Bulk entry from a 附件4–6 unit list: one request per unit, all or nothing by default."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session

from pki import audit
from pki.application import FIELD_LABELS, validate_application
from pki.enums import AccessMode, Action, Deal
from pki.errors import FieldError, ImportRowsError, RowError, ValidationError
from pki.models import ImportBatch
from pki.services.authz import require_role
from pki.services.context import Actor, Context
from pki.services.points import point_for_new_work
from pki.services.requests import RequestService
from pki.services.scope import Scope, scope_for
from policies import Policies

# The unit-list columns of 附件4–6, then any 附件7 field by its form label or its JSON key.
UNIT_LIST_HEADERS: dict[str, str] = {
    "单位名称": "unit_name",
    "统一社会信用代码": "credential_number",
    "行业": "industry",
    "地点": "location",
    "单位性质": "ownership_type",
    "近三年综合能源消费量": "energy_consumption",
    "主要用能品种": "main_energy_types",
}
REQUIRED_HEADERS = ("单位名称", "统一社会信用代码")
MAX_ROWS = 100_000


def header_map(headers: list[str]) -> dict[int, str]:
    """Column index -> field key; blank headers (Excel's trailing columns) are skipped.

    Raises ValidationError naming unknown, repeated or missing headers.
    """
    by_label = {label: key for key, label in FIELD_LABELS.items()}
    mapping: dict[int, str] = {}
    problems: list[FieldError] = []
    for index, header in enumerate(headers):
        name = header.strip()
        if not name:
            continue
        key = UNIT_LIST_HEADERS.get(name) or by_label.get(name) or (name if name in FIELD_LABELS else None)
        if key is None:
            problems.append(FieldError("header", f"unknown column {name!r}", f"未知列“{name}”"))
        elif key in mapping.values():
            problems.append(FieldError("header", f"column {name!r} given twice", f"列“{name}”重复"))
        else:
            mapping[index] = key
    for required in REQUIRED_HEADERS:
        if UNIT_LIST_HEADERS[required] not in mapping.values():
            problems.append(FieldError("header", f"missing column {required!r}", f"缺少列“{required}”"))
    if problems:
        raise ValidationError(problems)
    return mapping


def decode(data: bytes) -> str:
    """UTF-8 (with or without Excel's BOM), else GB 18030, which is what Chinese Excel saves."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as e:
        raise ValidationError(
            [
                FieldError(
                    "file", "not a text file in UTF-8 or GB 18030", "文件编码无法识别（应为UTF-8或GB18030）"
                )
            ]
        ) from e


@dataclass
class ImportResult:
    batch_id: int | None
    total: int
    request_ids: list[int] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)


@dataclass
class ParsedList:
    total: int = 0
    good: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of each good row
    bad: list[RowError] = field(default_factory=list)


def _row_error(line: int, field_name: str, message: str, message_zh: str) -> RowError:
    return RowError(line, (FieldError(field_name, message, message_zh),))


def unit_rows(data: bytes) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """The data rows of a unit list as (file line, {field key: non-blank cell}) or the row's structural error.

    The one CSV reader of 附件4–6 lists (request import and the parties registry): decoding, header names,
    blank lines, cell counts. Raises ValidationError for an unreadable, empty or oversized file.
    """
    reader = csv.reader(io.StringIO(decode(data), newline=""))
    try:
        headers = next(reader, None)
        if not headers:
            raise ValidationError([FieldError("file", "the file is empty", "文件为空")])
        mapping = header_map(headers)
        total = 0
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            total += 1
            if total > MAX_ROWS:
                raise ValidationError([FieldError("file", f"more than {MAX_ROWS} rows", f"超过{MAX_ROWS}行")])
            if len(row) != len(headers):
                yield (
                    line,
                    _row_error(
                        line, "row", f"{len(row)} cells for {len(headers)} columns", "列数与表头不一致"
                    ),
                )
            elif any(cell.strip() for i, cell in enumerate(row) if i not in mapping):
                yield (
                    line,
                    _row_error(line, "row", "a cell under a column without a header", "有数据的列缺少表头"),
                )
            else:
                yield line, {key: row[i] for i, key in mapping.items() if row[i].strip()}
    except csv.Error as e:
        raise ValidationError(
            [FieldError("file", f"not a readable CSV file ({e})", "CSV文件格式错误")]
        ) from e
    if total == 0:
        raise ValidationError([FieldError("file", "no data rows", "没有数据行")])


def parse_unit_list(
    data: bytes, defaults: Mapping[str, Any], *, policies: Policies, today: date
) -> ParsedList:
    """Validate every row of a unit list; ``defaults`` fill the fields the list does not carry."""
    base = {"credential_type": "uscc", **defaults}
    out = ParsedList()
    first_line_of: dict[str, int] = {}
    for line, cells in unit_rows(data):
        out.total += 1
        if isinstance(cells, RowError):
            out.bad.append(cells)
            continue
        raw = {**base, **cells}
        try:
            values = validate_application(raw, policies=policies, today=today)
        except ValidationError as e:
            out.bad.append(RowError(line, e.errors))
            continue
        first = first_line_of.setdefault(values["credential_number"], line)
        if first != line:
            out.bad.append(
                _row_error(
                    line,
                    "credential_number",
                    f"same unit as line {first}",
                    f"统一社会信用代码：与第{first}行重复",
                )
            )
            continue
        out.good.append(values)
        out.lines.append(line)
    return out


class BulkService:
    def __init__(self, ctx: Context, requests: RequestService) -> None:
        self._ctx = ctx
        self._requests = requests

    def import_units(
        self,
        data: bytes,
        *,
        actor: Actor,
        defaults: Mapping[str, Any],
        label: str,
        access_mode: AccessMode = AccessMode.BATCH,
        source_name: str = "",
        skip_invalid: bool = False,
        point: str | None = None,
    ) -> ImportResult:
        """Validate every row, then insert the batch and one request per unit in one transaction, for the
        actor's point (``point``: as for RequestService.create).

        Raises ImportRowsError when any row is bad and ``skip_invalid`` is false; then nothing is written.
        """
        with self._ctx.denials_recorded(actor, "batch.import", "batch"), self._ctx.read() as s:
            require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.ENTER, Deal.NEW)
        label = label.strip()
        if not label:
            raise ValidationError([FieldError("label", "a batch label is required", "批次名称：必填")])
        parsed = parse_unit_list(data, defaults, policies=self._ctx.policies, today=self._ctx.today())
        with self._ctx.denials_recorded(actor, "batch.import", "batch"), self._ctx.write() as s:
            require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.ENTER, Deal.NEW)
            scope = scope_for(s, actor)
            point_id = point_for_new_work(s, scope, point)
            good = self._drop_open_duplicates(s, parsed, scope)
            if parsed.bad and not skip_invalid:
                raise ImportRowsError(sorted(parsed.bad, key=lambda r: r.row), total=parsed.total)
            result = ImportResult(
                batch_id=None, total=parsed.total, rejected=sorted(parsed.bad, key=lambda r: r.row)
            )
            if not good:
                return result
            now = self._ctx.now()
            batch = ImportBatch(
                label=label[:128],
                access_mode=access_mode,
                source_name=source_name[:255],
                row_count=len(good),
                created_by=actor.username,
                created_at=now,
            )
            s.add(batch)
            s.flush()
            assert batch.id is not None
            result.request_ids = self._requests.insert_many(
                s, good, actor=actor, batch_id=batch.id, point_id=point_id
            )
            audit.append(
                s,
                at=now,
                actor=actor.username,
                action="batch.import",
                subject_type="batch",
                subject_id=batch.id,
                details={
                    "label": label,
                    "imported": len(good),
                    "rejected": len(parsed.bad),
                    "source": source_name,
                },
            )
            result.batch_id = batch.id
        return result

    def _drop_open_duplicates(self, s: Session, parsed: ParsedList, scope: Scope) -> list[dict[str, Any]]:
        """Rows whose unit already has an open request of the same type for the same system become row errors
        (naming that request when it is in ``scope``)."""
        open_requests = self._requests.open_duplicates(s, parsed.good)
        good: list[dict[str, Any]] = []
        for values, line in zip(parsed.good, parsed.lines, strict=True):
            key = (values["credential_number"], str(values["access_type"]), values["target_system"])
            clash = open_requests.get(key)
            if clash is None:
                good.append(values)
            else:
                number = clash[0] if scope.covers(clash[1]) else None
                parsed.bad.append(
                    _row_error(
                        line,
                        "credential_number",
                        f"unit already has open request {number}"
                        if number
                        else "unit already has an open request",
                        f"该单位已有同类在办申请（编号 {number}）" if number else "该单位已有同类在办申请",
                    )
                )
        return good
