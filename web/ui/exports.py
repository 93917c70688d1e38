"""CSV exports for people (Excel, WPS): Chinese headers, labels rather than codes, people by their names,
Beijing time; every cell neutralised against formulas (pki.reports)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

from pki.application import CHOICE_LABELS, FIELD_LABELS
from pki.clock import CHINA_TZ
from pki.enums import DEAL_LABELS_ZH, STATE_LABELS_ZH
from pki.models import CertificateRequest
from pki.reports import CsvReport

# (header, the request's attribute); ``*_by`` columns are people, ``*_at`` instants.
REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("编号", "id"),
    (FIELD_LABELS["unit_name"], "unit_name"),
    (FIELD_LABELS["credential_number"], "credential_number"),
    (FIELD_LABELS["province"], "province"),
    (FIELD_LABELS["access_type"], "access_type"),
    ("状态", "state"),
    ("业务类型", "deal"),
    ("录入员", "entered_by"),
    ("录入时间", "entered_at"),
    ("受理人", "accepted_by"),
    ("受理时间", "accepted_at"),
    ("负责人", "countersigned_by"),
    ("签字时间", "countersigned_at"),
    ("审核员", "reviewed_by"),
    ("审核时间", "reviewed_at"),
    ("签发人", "issued_by"),
    ("签发时间", "issued_at"),
    ("分发员", "distributed_by"),
    ("分发时间", "distributed_at"),
)


def requests_csv(rows: Sequence[CertificateRequest], names: Mapping[str, str]) -> bytes:
    """``rows`` as CSV (UTF-8 with a BOM, so that Excel reads the Chinese right); ``names`` maps each
    login to the person's name (UserService.display_names)."""
    stream = io.StringIO(newline="")
    report = CsvReport(stream)
    report.row(header for header, _ in REQUEST_COLUMNS)
    for req in rows:
        report.row(_cell(req, attribute, names) for _, attribute in REQUEST_COLUMNS)
    return ("\ufeff" + stream.getvalue()).encode("utf-8")


def _cell(req: CertificateRequest, attribute: str, names: Mapping[str, str]) -> object:
    value = getattr(req, attribute)
    if value is None:
        return ""
    if attribute == "state":
        return STATE_LABELS_ZH[value]
    if attribute == "deal":
        return DEAL_LABELS_ZH[value]
    if attribute == "access_type":
        return CHOICE_LABELS["access_type"].get(value.value, value.value)
    if attribute.endswith("_by"):
        return names.get(value, value)
    if isinstance(value, datetime):
        return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return value
