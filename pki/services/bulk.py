"""Bulk entry from a 附件4–6 unit list: one request per unit, all or nothing by default."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pki import audit
from pki.application import FIELD_LABELS, validate_application
from pki.enums import AccessMode, Action
from pki.errors import FieldError, ImportRowsError, RowError, ValidationError
from pki.models import ImportBatch
from pki.services.authz import require_role
from pki.services.context import Actor, Context
from pki.services.requests import RequestService

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


def header_map(headers: list[str]) -> dict[str, str]:
    """Column header -> field key; raises ValidationError naming unknown or missing headers."""
    by_label = {label: key for key, label in FIELD_LABELS.items()}
    mapping: dict[str, str] = {}
    problems: list[FieldError] = []
    for h in headers:
        name = h.strip()
        key = UNIT_LIST_HEADERS.get(name) or by_label.get(name) or (name if name in FIELD_LABELS else None)
        if key is None:
            problems.append(FieldError("header", f"unknown column {name!r}", f"未知列“{name}”"))
        elif key in mapping.values():
            problems.append(FieldError("header", f"column {name!r} given twice", f"列“{name}”重复"))
        else:
            mapping[h] = key
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
        return data.decode("gb18030")


@dataclass
class ImportResult:
    batch_id: int | None
    total: int
    request_ids: list[int] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)


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
    ) -> ImportResult:
        """Validate every row (``defaults`` fill what the list does not carry), then insert in one transaction.

        Raises ImportRowsError when any row is bad and ``skip_invalid`` is false; then nothing is written.
        """
        require_role(self._ctx.policies.workflow, actor, Action.ENTER)
        if not label.strip():
            raise ValidationError([FieldError("label", "a batch label is required", "批次名称：必填")])
        reader = csv.reader(io.StringIO(decode(data), newline=""))
        headers = next(reader, None)
        if not headers:
            raise ValidationError([FieldError("file", "the file is empty", "文件为空")])
        mapping = header_map(headers)
        base = dict(defaults)
        base.setdefault("credential_type", "uscc")
        today = self._ctx.today()
        good: list[dict[str, Any]] = []
        bad: list[RowError] = []
        first_line_of: dict[str, int] = {}
        total = 0
        for line_no, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            total += 1
            if total > MAX_ROWS:
                raise ValidationError([FieldError("file", f"more than {MAX_ROWS} rows", f"超过{MAX_ROWS}行")])
            if len(row) != len(headers):
                bad.append(RowError(line_no, (FieldError("row", f"{len(row)} cells for {len(headers)} columns",
                                                          "列数与表头不一致"),)))
                continue
            raw = {**base, **{mapping[h]: cell for h, cell in zip(headers, row, strict=True) if cell.strip()}}
            try:
                values = validate_application(raw, policies=self._ctx.policies, today=today)
            except ValidationError as e:
                bad.append(RowError(line_no, e.errors))
                continue
            number = values["credential_number"]
            if number in first_line_of:
                bad.append(RowError(line_no, (FieldError(
                    "credential_number", f"same unit as line {first_line_of[number]}",
                    f"统一社会信用代码：与第{first_line_of[number]}行重复"),)))
                continue
            first_line_of[number] = line_no
            good.append(values)
        if total == 0:
            raise ValidationError([FieldError("file", "no data rows", "没有数据行")])
        if bad and not skip_invalid:
            raise ImportRowsError(bad, total=total)
        result = ImportResult(batch_id=None, total=total, rejected=bad)
        if not good:
            return result
        with self._ctx.write() as s:
            now = self._ctx.now()
            batch = ImportBatch(label=label.strip()[:128], access_mode=access_mode, source_name=source_name[:255],
                                row_count=len(good), created_by=actor.username, created_at=now)
            s.add(batch)
            s.flush()
            assert batch.id is not None
            for values in good:
                req = self._requests.insert_validated(s, values, actor=actor, batch_id=batch.id)
                assert req.id is not None
                result.request_ids.append(req.id)
            audit.append(s, at=now, actor=actor.username, action="batch.import", subject_type="batch",
                         subject_id=batch.id, details={"label": batch.label, "imported": len(good),
                                                       "rejected": len(bad), "source": source_name})
            result.batch_id = batch.id
        return result
