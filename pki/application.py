"""The 附件7 application: its fields, their Chinese labels and the validation of one record.

:func:`validate_application` takes raw input (parsed JSON, a CSV row, a web form) and returns normalized
values ready to store, or raises :class:`ValidationError` naming every bad field at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pki import validators as v
from pki.enums import AccessType, CredentialType, HandlerIdType, Network
from pki.errors import FieldError, ValidationError
from policies import Policies

# Field key -> the form's own label. The order is the paper form's.
FIELD_LABELS: dict[str, str] = {
    "unit_name": "单位名称",
    "legal_representative": "法定代表人",
    "unit_phone": "单位电话",
    "unit_fax": "单位传真",
    "handler_name": "经办人姓名",
    "handler_contact": "经办人联系方式",
    "province": "省份",
    "address": "地址",
    "county": "县",
    "township": "乡镇",
    "email": "Email",
    "postal_address": "通讯地址",
    "postal_code": "邮编",
    "handler_id_type": "经办人身份证件类型",
    "handler_id_number": "经办人身份证件号码",
    "credential_type": "申请单位有效证件",
    "credential_number": "证件号码",
    "network": "网络接入方式",
    "access_type": "接入类型",
    "target_system": "申请访问的系统",
    "validity_months": "有效期",
    "agreement_accepted": "是否遵守《国家政务外网数字证书中心电子认证服务协议》",
    "application_date": "申请日期",
    # From a 附件4–6 unit list
    "industry": "行业",
    "location": "地点",
    "ownership_type": "单位性质",
    "energy_consumption": "近三年综合能源消费量",
    "main_energy_types": "主要用能品种",
}

# The form's words for each choice of its tick boxes, by stored value.
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "handler_id_type": {"resident_id": "身份证", "other": "其它"},
    "credential_type": {"institution_registration": "事业单位法人登记证", "uscc": "统一社会信用代码"},
    "network": {"extranet": "政务外网", "internet": "互联网"},
    "access_type": {"test": "测试接入", "formal": "正式接入"},
    "agreement_accepted": {"true": "是", "false": "否"},
}

# Free-text fields: (max length, required)
_TEXT: dict[str, tuple[int, bool]] = {
    "unit_name": (64, True),  # X.509 ub-organization-name
    "legal_representative": (32, True),
    "handler_name": (32, True),
    "address": (128, True),
    "county": (32, False),
    "township": (32, False),
    "postal_address": (128, True),
    "target_system": (128, True),
    "industry": (64, False),
    "location": (128, False),
    "ownership_type": (32, False),
    "energy_consumption": (128, False),
    "main_energy_types": (128, False),
}

_FORMATTED: dict[str, Callable[[str], str]] = {
    "unit_phone": v.normalize_phone,
    "unit_fax": v.normalize_landline,
    "handler_contact": v.normalize_phone,
    "email": v.normalize_email,
    "postal_code": v.normalize_postcode,
}

_ENUMS: dict[str, type[StrEnum]] = {
    "handler_id_type": HandlerIdType,
    "credential_type": CredentialType,
    "network": Network,
    "access_type": AccessType,
}

# Spellings people use on paper and in spreadsheets, accepted beside the enum values.
_ENUM_ALIASES: dict[str, str] = {
    "身份证": "resident_id",
    "其它": "other",
    "其他": "other",
    "统一社会信用代码": "uscc",
    "事业单位法人登记证": "institution_registration",
    "政务外网": "extranet",
    "互联网": "internet",
    "测试": "test",
    "测试接入": "test",
    "正式": "formal",
    "正式接入": "formal",
}

ALL_FIELDS = frozenset(FIELD_LABELS)
REQUIRED_FIELDS = frozenset(
    {k for k, (_, req) in _TEXT.items() if req}
    | set(_FORMATTED)
    | set(_ENUMS)
    | {
        "handler_id_number",
        "credential_number",
        "province",
        "validity_months",
        "agreement_accepted",
        "application_date",
    }
)


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field: str, message: str, message_zh: str) -> None:
        self.items.append(FieldError(field, message, f"{FIELD_LABELS.get(field, field)}：{message_zh}"))


def single_line(text: str) -> bool:
    """No control, format or line/paragraph-separator characters: these end up in certificate subjects."""
    if text.isprintable():  # fast path: printable excludes every C* category, Zl/Zp (and non-ASCII spaces)
        return True
    return not any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in text
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate_application(raw: Mapping[str, Any], *, policies: Policies, today: date) -> dict[str, Any]:
    """Normalize and check one application. ``today`` is the China Standard Time date of the operation."""
    errs = _Errors()
    out: dict[str, Any] = {}
    for key in sorted(set(raw) - ALL_FIELDS):
        errs.add(key, "unknown field", "未知字段")
    for key in sorted(REQUIRED_FIELDS):
        if _blank(raw.get(key)):
            errs.add(key, "is required", "必填")

    def text(key: str) -> str | None:
        value = raw.get(key)
        if _blank(value):
            return None
        if not isinstance(value, str):
            errs.add(key, "must be text", "应为文本")
            return None
        return value.strip()

    for key, (limit, _) in _TEXT.items():
        s = text(key)
        if s is None:
            out[key] = ""
        elif len(s) > limit:
            errs.add(key, f"at most {limit} characters", f"不能超过{limit}个字")
        elif not single_line(s):
            errs.add(key, "must be a single line", "不能包含换行或控制字符")
        else:
            out[key] = s
    for key, normalize in _FORMATTED.items():
        s = text(key)
        if s is not None:
            try:
                out[key] = normalize(s)
            except v.Invalid as e:
                errs.add(key, e.message, e.message_zh)
    for key, enum_cls in _ENUMS.items():
        s = text(key)
        if s is not None:
            try:
                out[key] = enum_cls(_ENUM_ALIASES.get(s, s))
            except ValueError:
                allowed = ", ".join(m.value for m in enum_cls)
                errs.add(key, f"must be one of {allowed}", "取值无效")

    _check_handler_id(raw, out, errs, text, today)
    _check_credential_and_province(out, errs, text, policies)
    _check_validity(raw.get("validity_months"), out, errs, policies)
    _check_agreement(raw.get("agreement_accepted"), out, errs)
    _check_application_date(raw.get("application_date"), out, errs, policies, today)
    if errs.items:
        # One error per field is enough to act on; "required" wins over later format complaints.
        first: dict[str, FieldError] = {}
        for item in errs.items:
            first.setdefault(item.field, item)
        raise ValidationError(first.values())
    return out


def _check_handler_id(
    raw: Mapping[str, Any], out: dict[str, Any], errs: _Errors, text: Callable[[str], str | None], today: date
) -> None:
    number = text("handler_id_number")
    if number is None:
        return
    if out.get("handler_id_type") is HandlerIdType.RESIDENT_ID:
        try:
            out["handler_id_number"] = v.normalize_resident_id(number, today=today)
        except v.Invalid as e:
            errs.add("handler_id_number", e.message, e.message_zh)
    elif len(number) > 32:
        errs.add("handler_id_number", "at most 32 characters", "不能超过32个字符")
    elif not single_line(number):
        errs.add("handler_id_number", "must be a single line", "不能包含换行或控制字符")
    else:
        out["handler_id_number"] = number


def _check_credential_and_province(
    out: dict[str, Any], errs: _Errors, text: Callable[[str], str | None], policies: Policies
) -> None:
    province_name = text("province")
    province = policies.provinces.lookup(province_name) if province_name else None
    if province_name and province is None:
        errs.add("province", f"unknown province {province_name!r}", "省份名称无效")
    elif province is not None:
        out["province"] = province.name
    number = text("credential_number")
    kind = out.get("credential_type")
    if number is None or kind is None:
        return
    try:
        if kind is CredentialType.USCC:
            out["credential_number"] = v.normalize_uscc(number)
        else:
            out["credential_number"] = v.normalize_institution_registration(number)
    except v.Invalid as e:
        errs.add("credential_number", e.message, e.message_zh)
        return
    normalized = out["credential_number"]
    if province is not None:
        # A credit code carries the division at positions 3–8; a legacy registration number starts with it.
        code = v.uscc_province_code(normalized) if len(normalized) == 18 else normalized[:2]
        owner = policies.provinces.by_code.get(code)
        if owner is not None and owner.code != province.code:
            errs.add(
                "province",
                f"{province.name} does not match the credential's division code {code} ({owner.name})",
                f"与统一社会信用代码中的行政区划（{owner.name}）不一致",
            )


def _check_validity(value: Any, out: dict[str, Any], errs: _Errors, policies: Policies) -> None:
    if _blank(value):
        return
    months: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        months = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,3}", value.strip()):
        months = int(value.strip())
    choices = policies.form.validity_months
    if months is None or months not in choices:
        allowed = ", ".join(str(m) for m in choices)
        errs.add(
            "validity_months",
            f"must be one of {allowed} months",
            f"应为{('、'.join(map(str, choices)))}个月之一",
        )
        return
    out["validity_months"] = months


_YES = {"true", "yes", "y", "1", "是", "同意"}
_NO = {"false", "no", "n", "0", "否", "不同意"}


def _check_agreement(value: Any, out: dict[str, Any], errs: _Errors) -> None:
    if _blank(value):
        return
    agreed: bool | None = value if isinstance(value, bool) else None
    if isinstance(value, str):
        s = value.strip().lower()
        agreed = True if s in _YES else False if s in _NO else None
    if agreed is None:
        errs.add("agreement_accepted", "must be yes or no", "应为“是”或“否”")
    elif not agreed:
        errs.add(
            "agreement_accepted", "the service agreement must be accepted", "未同意电子认证服务协议，不能申请"
        )
    else:
        out["agreement_accepted"] = True


def _check_application_date(
    value: Any, out: dict[str, Any], errs: _Errors, policies: Policies, today: date
) -> None:
    if _blank(value):
        return
    day: date | None = None
    if isinstance(value, datetime):
        day = None
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            day = None
    if day is None:
        errs.add("application_date", "must be a date YYYY-MM-DD", "日期格式应为年-月-日，例如 2020-10-19")
    elif day > today:
        errs.add("application_date", "lies in the future", "不能晚于今天")
    elif day < policies.form.earliest_application_date:
        earliest = policies.form.earliest_application_date.isoformat()
        errs.add("application_date", f"before {earliest}", f"不能早于{earliest}")
    else:
        out["application_date"] = day
