"""Validation and normalisation of Chinese identifiers and contact data.

Every ``normalize_*`` function takes raw user input and either returns the canonical form or raises
:class:`Invalid` with an English and a Chinese message. Messages never name the field (the caller knows
which field it validated) and never reveal an expected check character.

Formats:

* 统一社会信用代码 (unified social credit code, USCC), GB 32100-2015: 18 characters from
  :data:`USCC_CHARSET`; positions 3–8 are the administrative division code, positions 9–17 the
  organisation code (GB 11714, whose own check character is position 17), position 18 the check character.
* 居民身份证号码 (resident identity number), GB 11643-1999: 17 digits and a check character (digit or X);
  positions 7–14 are the birth date YYYYMMDD.
* 事业单位法人登记证 number: the legacy 12-digit certificate number or the institution's USCC.
"""

from __future__ import annotations

import datetime
import re

__all__ = [
    "USCC_CHARSET",
    "Invalid",
    "normalize_email",
    "normalize_institution_registration",
    "normalize_landline",
    "normalize_mobile",
    "normalize_phone",
    "normalize_postcode",
    "normalize_resident_id",
    "normalize_uscc",
    "org_code_check_character",
    "uscc_check_character",
    "uscc_province_code",
]


class Invalid(ValueError):  # noqa: N818 - the public name is fixed by the API
    """A value is malformed.

    ``message`` is English, ``message_zh`` Chinese; neither includes the field name.
    """

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh


# --- USCC (GB 32100-2015) and organisation code (GB 11714) ---

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters of a USCC, in value order (0..30): digits and upper-case letters without I O S V Z."""

_USCC_VALUES = {ch: i for i, ch in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, 16, 17, 20, ...

_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_VALUES = {ch: i for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}

_ASCII_DIGITS = frozenset("0123456789")


def _is_digits(value: str) -> bool:
    """True if ``value`` is non-empty and all ASCII digits (``str.isdigit`` also accepts e.g. "١" or "²")."""
    return bool(value) and all(ch in _ASCII_DIGITS for ch in value)


def uscc_check_character(first17: str) -> str:
    """The GB 32100-2015 check character (position 18) for the first 17 characters of a USCC.

    ``first17`` must be 17 characters from :data:`USCC_CHARSET` (upper case); otherwise ``ValueError``.
    """
    if len(first17) != 17 or any(ch not in _USCC_VALUES for ch in first17):
        raise ValueError(f"need 17 characters from the USCC character set, got {first17!r}")
    total = sum(_USCC_VALUES[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_character(first8: str) -> str:
    """The GB 11714 check character for the 8-character organisation code body.

    ``first8`` must be 8 characters from 0–9 and A–Z (upper case); otherwise ``ValueError``.
    """
    if len(first8) != 8 or any(ch not in _ORG_CODE_VALUES for ch in first8):
        raise ValueError(f"need 8 characters from 0-9 and A-Z, got {first8!r}")
    total = sum(_ORG_CODE_VALUES[ch] * w for ch, w in zip(first8, _ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 10:
        return "X"
    if check == 11:
        return "0"
    return str(check)


def normalize_uscc(value: str) -> str:
    """Validate a unified social credit code; return it stripped and upper-cased."""
    code = value.strip().upper()
    if len(code) != 18:
        raise Invalid(
            f"must be 18 characters long (got {len(code)})",
            f"应为18位（当前{len(code)}位）",
        )
    for pos, ch in enumerate(code, start=1):
        if ch not in _USCC_VALUES:
            raise Invalid(
                f"character {ch!r} at position {pos} is not allowed (letters I, O, S, V, Z are never used)",
                f"第{pos}位字符“{ch}”不允许（不使用字母I、O、S、V、Z）",
            )
    if not _is_digits(code[2:8]):
        raise Invalid(
            "administrative division code (positions 3-8) must be digits",
            "第3至8位（登记管理机关行政区划码）应为数字",
        )
    if code[16] != org_code_check_character(code[8:16]):
        raise Invalid(
            "organization-code check character (position 17) is wrong",
            "第17位（组织机构代码校验位）错误",
        )
    if code[17] != uscc_check_character(code[:17]):
        raise Invalid("check character (position 18) is wrong", "第18位校验码错误")
    return code


def uscc_province_code(uscc: str) -> str:
    """The 2-digit province part (positions 3–4) of a USCC's division code, e.g. "11" for Beijing.

    The code is validated with :func:`normalize_uscc` first, so a malformed code raises :class:`Invalid`.
    """
    return normalize_uscc(uscc)[2:4]


# --- Resident identity number (GB 11643-1999) ---

_RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK = "10X98765432"


def _resident_id_check_character(first17: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(first17, _RESIDENT_ID_WEIGHTS, strict=True))
    return _RESIDENT_ID_CHECK[total % 11]


def normalize_resident_id(value: str, *, today: datetime.date | None = None) -> str:
    """Validate an 18-digit resident identity number; return it stripped, with an upper-case X.

    The birth date (positions 7–14) must be a real calendar date in or after 1900 and, when ``today`` is
    given, not after it.
    """
    number = value.strip().upper()
    if len(number) != 18 or not _is_digits(number[:17]) or not (_is_digits(number[17]) or number[17] == "X"):
        raise Invalid(
            "must be 18 characters: 17 digits followed by a digit or X",
            "应为18位：前17位为数字，最后一位为数字或X",
        )
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise Invalid("birth date (positions 7-14) is not a valid date", "出生日期不是有效日期") from None
    if birth.year < 1900:
        raise Invalid("birth date (positions 7-14) is before 1900", "出生日期早于1900年")
    if today is not None and birth > today:
        raise Invalid("birth date (positions 7-14) is in the future", "出生日期晚于今天")
    if number[17] != _resident_id_check_character(number[:17]):
        raise Invalid("check character (position 18) is wrong", "第18位校验码错误")
    return number


# --- Postcode, telephone numbers, e-mail ---

_LANDLINE_RE = re.compile(r"0[0-9]{2,3}-?[0-9]{7,8}(?:-[0-9]{1,6})?")
_MOBILE_RE = re.compile(r"(?:(?:\+|00)86)?(1[3-9][0-9]{9})")
# Digit groups separated by runs of spaces or hyphens, optionally preceded by "+".
_MOBILE_GROUPS_RE = re.compile(r"\+?[0-9]+(?:[ -]+[0-9]+)*")


def normalize_postcode(value: str) -> str:
    """Validate a 6-digit postcode (leading zeros are valid, e.g. 010000); return it stripped."""
    code = value.strip()
    if len(code) != 6 or not _is_digits(code):
        raise Invalid("must be exactly 6 digits", "应为6位数字")
    return code


def normalize_landline(value: str) -> str:
    """Validate a landline number: area code starting with 0, optional "-", 7–8 digits, optional extension.

    Examples: 010-12345678, 0571-8765432, 01012345678-123. Returns the stripped value.
    """
    number = value.strip()
    if _LANDLINE_RE.fullmatch(number) is None:
        raise Invalid(
            "not a landline number (area code starting with 0, then 7-8 digits, e.g. 010-12345678)",
            "固定电话格式不正确（以0开头的区号加7至8位号码，如010-12345678）",
        )
    return number


def normalize_mobile(value: str) -> str:
    """Validate a mainland mobile number, optionally prefixed +86 or 0086; return the 11-digit number.

    Spaces and hyphens between digit groups are accepted ("138 0013 8000", "+86 138-0013-8000").
    """
    number = value.strip()
    match = None
    if _MOBILE_GROUPS_RE.fullmatch(number) is not None:
        match = _MOBILE_RE.fullmatch(re.sub(r"[ -]", "", number))
    if match is None:
        raise Invalid(
            "not a mobile number (11 digits starting with 13-19, optionally prefixed +86)",
            "手机号码格式不正确（应为以13至19开头的11位号码）",
        )
    return match.group(1)


def normalize_phone(value: str) -> str:
    """Validate a landline (tried first) or mobile number; return its normalised form."""
    try:
        return normalize_landline(value)
    except Invalid:
        pass
    try:
        return normalize_mobile(value)
    except Invalid:
        raise Invalid(
            "not a landline number (e.g. 010-12345678) or mobile number (e.g. 13800138000)",
            "电话号码格式不正确（固定电话如010-12345678，手机如13800138000）",
        ) from None


# RFC 5322 "atext": the characters allowed in a dot-atom local part besides the dots.
_EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def normalize_email(value: str) -> str:
    """Validate an e-mail address; return it stripped with the domain lower-cased (the local part is kept)."""
    address = value.strip()
    if address.count("@") != 1:
        raise Invalid("must contain exactly one @", "应包含且仅包含一个@")
    local, domain = address.split("@")
    if not local:
        raise Invalid("the part before @ is empty", "@前的部分不能为空")
    if len(local) > 64:
        raise Invalid("the part before @ is longer than 64 characters", "@前的部分不能超过64个字符")
    if _EMAIL_LOCAL_RE.fullmatch(local) is None:
        raise Invalid(
            "the part before @ contains characters that are not allowed",
            "@前的部分含有不允许的字符",
        )
    labels = domain.split(".")
    if len(labels) < 2 or any(_DOMAIN_LABEL_RE.fullmatch(label) is None for label in labels):
        raise Invalid(
            "the domain after @ is not valid (e.g. example.gov.cn)",
            "@后的域名不正确（如example.gov.cn）",
        )
    if len(address) > 254:
        raise Invalid("must be at most 254 characters long", "不能超过254个字符")
    return f"{local}@{domain.lower()}"


# --- 事业单位法人登记证 ---

_INSTITUTION_PREFIX = "事证第"
_INSTITUTION_SUFFIX = "号"


def normalize_institution_registration(value: str) -> str:
    """Validate a public-institution legal-person registration number.

    Accepted: the legacy 12-digit certificate number (first 6 digits an administrative division code, so
    the first digit is 1–8), or the institution's 18-character USCC (which must start with "1",
    registration by the 机构编制 authority). A surrounding "事证第" … "号" is removed. Returns the bare number
    (a USCC upper-cased).
    """
    number = value.strip()
    if number.startswith(_INSTITUTION_PREFIX) and number.endswith(_INSTITUTION_SUFFIX):
        number = number[len(_INSTITUTION_PREFIX) : -len(_INSTITUTION_SUFFIX)].strip()
    if len(number) == 12:
        if not _is_digits(number):
            raise Invalid("a 12-character certificate number must be all digits", "12位证书号应全部为数字")
        if number[0] not in "12345678":
            raise Invalid(
                "a 12-digit certificate number must start with a division code (first digit 1-8)",
                "12位证书号应以行政区划码开头（首位为1至8）",
            )
        return number
    if len(number) == 18:
        uscc = normalize_uscc(number)
        if not uscc.startswith("1"):
            raise Invalid(
                "a public institution's credit code must start with 1",
                "事业单位的统一社会信用代码应以1开头",
            )
        return uscc
    raise Invalid(
        "must be a 12-digit certificate number or an 18-character unified social credit code",
        "应为12位证书号或18位统一社会信用代码",
    )
