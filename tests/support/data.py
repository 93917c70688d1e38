"""Valid sample data built from the checked examples in shared/REFERENCE.md."""

from __future__ import annotations

from typing import Any

from pki.validators import org_code_check_character, uscc_check_character


def application(**overrides: Any) -> dict[str, Any]:
    """A complete, valid 附件7 application (北京, test access) with ``overrides`` applied."""
    data: dict[str, Any] = {
        "unit_name": "北京市某能源监测中心",
        "legal_representative": "张三",
        "unit_phone": "010-12345678",
        "unit_fax": "010-12345679",
        "handler_name": "李四",
        "handler_contact": "13800138000",
        "address": "北京市西城区某街1号",
        "county": "西城区",
        "township": "",
        "email": "lisi@example.gov.cn",
        "handler_id_type": "resident_id",
        "handler_id_number": "110105199003071239",
        "postal_address": "北京市西城区某街1号",
        "postal_code": "100032",
        "credential_type": "uscc",
        "credential_number": "11110000000012343B",
        "province": "北京",
        "network": "extranet",
        "access_type": "test",
        "target_system": "国家重点用能单位能耗在线监测系统",
        "validity_months": 12,
        "agreement_accepted": True,
        "application_date": "2020-10-19",
    }
    data.update(overrides)
    return data


def make_uscc(division: str, body: str, *, dept: str = "9", category: str = "1") -> str:
    """A valid USCC from a 6-digit division code and an 8-character organization code body."""
    org = body + org_code_check_character(body)
    first17 = dept + category + division + org
    return first17 + uscc_check_character(first17)


def batch_defaults(**overrides: Any) -> dict[str, Any]:
    """What every unit of a 附件4–6 list shares: everything but the unit's own columns."""
    base = application()
    for key in ("unit_name", "credential_number"):
        base.pop(key)
    base.update(overrides)
    return base


# What sniffing takes for a PDF: enough for a scan of the signed and stamped form.
SCAN_PDF = b"%PDF-1.4\n% the signed and stamped application form, scanned\n"


def attach_required_scans(service: Any, request_id: int, actor: Any) -> None:
    """Keep the scans workflow.toml [acceptance] requires before ``request_id`` may be accepted (the stamped
    form, for a formal request), as the entry clerk does before handing the file on."""
    req = service.requests.get(request_id)
    for kind in service.ctx.policies.workflow.acceptance.attachments_for(req.access_type):
        service.attachments.add(request_id, kind=kind, filename=f"{kind}.pdf", data=SCAN_PDF, actor=actor)
