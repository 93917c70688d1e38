"""Tests for pki.validators: USCC, organisation code, resident ID, postcode, phones, e-mail, 事业单位."""

from __future__ import annotations

import datetime
import random

import pytest

from pki.validators import (
    USCC_CHARSET,
    Invalid,
    normalize_email,
    normalize_institution_registration,
    normalize_landline,
    normalize_mobile,
    normalize_phone,
    normalize_postcode,
    normalize_resident_id,
    normalize_uscc,
    org_code_check_character,
    uscc_check_character,
    uscc_province_code,
)

# Valid codes given in the reference, plus ones computed with the published algorithms.
VALID_USCC = "91350100MA2Y123446"
VALID_USCC_2 = "11110000000012343B"


def _with_pos17(first16: str) -> str:
    """First 16 characters + the correct organisation-code check character (position 17)."""
    return first16 + org_code_check_character(first16[8:16])


def _complete(first16: str) -> str:
    """A fully valid USCC built from its first 16 characters."""
    first17 = _with_pos17(first16)
    return first17 + uscc_check_character(first17)


def _message_zh(exc: pytest.ExceptionInfo[Invalid]) -> str:
    return exc.value.message_zh


# --- Invalid ---


def test_invalid_carries_both_messages_and_is_a_value_error() -> None:
    err = Invalid("bad", "错误")
    assert isinstance(err, ValueError)
    assert err.message == "bad"
    assert err.message_zh == "错误"
    assert str(err) == "bad"


# --- check characters ---


def test_uscc_charset() -> None:
    assert USCC_CHARSET == "0123456789ABCDEFGHJKLMNPQRTUWXY"
    assert len(USCC_CHARSET) == 31
    assert not set("IOSVZ") & set(USCC_CHARSET)


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        pytest.param("91350100MA2Y12344", "6", id="reference-example-1"),
        pytest.param("11110000000012343", "B", id="reference-example-2"),
        pytest.param("93650100000000000", "F", id="all-zero-org-code"),
        pytest.param("00000000000000000", "0", id="all-zero-sum-gives-0"),
    ],
)
def test_uscc_check_character(first17: str, expected: str) -> None:
    assert uscc_check_character(first17) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("9135010MA2Y12344", id="16-chars"),
        pytest.param("91350100MA2Y123446", id="18-chars"),
        pytest.param("91350100MA2Y1234I", id="letter-I"),
        pytest.param("91350100ma2y12344", id="lower-case"),
    ],
)
def test_uscc_check_character_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        uscc_check_character(bad)


@pytest.mark.parametrize(
    ("first8", "expected"),
    [
        pytest.param("MA2Y1234", "4", id="letters"),
        pytest.param("00000001", "9", id="digits"),
        pytest.param("D2143569", "X", id="gb11714-example-10-is-X"),
        pytest.param("00000006", "X", id="10-is-X"),
        pytest.param("00000000", "0", id="11-is-0"),
        pytest.param("00000019", "0", id="11-is-0-again"),
        pytest.param("ABCDEFGH", "5", id="all-letters"),
        pytest.param("ZZZZZZZZ", org_code_check_character("ZZZZZZZZ"), id="Z-allowed-in-GB11714"),
    ],
)
def test_org_code_check_character(first8: str, expected: str) -> None:
    assert org_code_check_character(first8) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("1234567", id="7-chars"),
        pytest.param("123456789", id="9-chars"),
        pytest.param("1234567a", id="lower-case"),
        pytest.param("1234567-", id="hyphen"),
    ],
)
def test_org_code_check_character_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        org_code_check_character(bad)


# --- normalize_uscc ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(VALID_USCC, VALID_USCC, id="reference-example-1"),
        pytest.param(VALID_USCC_2, VALID_USCC_2, id="reference-example-2"),
        pytest.param("91350100ma2y123446", VALID_USCC, id="lower-case-normalized"),
        pytest.param("  91350100MA2Y123446\t\n", VALID_USCC, id="surrounding-whitespace"),
        pytest.param("N1110000MA01ABCD5L", "N1110000MA01ABCD5L", id="letter-first-N"),
        pytest.param("Y1310000123456788D", "Y1310000123456788D", id="letter-first-Y"),
        pytest.param("A1330100MA2XY0129E", "A1330100MA2XY0129E", id="letter-first-A"),
        pytest.param("a1330100ma2xy0129e", "A1330100MA2XY0129E", id="letter-first-lower-case"),
        pytest.param("1211000000000006XK", "1211000000000006XK", id="pos17-is-X"),
        pytest.param("91440300000000000E", "91440300000000000E", id="pos17-is-0"),
        pytest.param("52630000ABCDEFGH52", "52630000ABCDEFGH52", id="all-letter-org-code"),
    ],
)
def test_normalize_uscc_valid(raw: str, expected: str) -> None:
    assert normalize_uscc(raw) == expected


def test_letter_first_examples_are_really_built_by_the_algorithm() -> None:
    for code in ("N1110000MA01ABCD5L", "Y1310000123456788D", "A1330100MA2XY0129E"):
        assert _complete(code[:16]) == code


@pytest.mark.parametrize(
    ("raw", "english", "chinese"),
    [
        pytest.param("91350100MA2Y12344", "18 characters", "应为18位", id="17-chars"),
        pytest.param("91350100MA2Y1234466", "18 characters", "应为18位", id="19-chars"),
        pytest.param("", "18 characters", "应为18位", id="empty"),
        pytest.param("9135 0100MA2Y123446", "18 characters", "应为18位", id="inner-space-changes-length"),
        pytest.param("91350100MI2Y123446", "position 10", "第10位字符“I”不允许", id="letter-I"),
        pytest.param("91350100MO2Y123446", "position 10", "第10位字符“O”不允许", id="letter-O"),
        pytest.param("91350100MS2Y123446", "position 10", "第10位字符“S”不允许", id="letter-S"),
        pytest.param("91350100MV2Y123446", "position 10", "第10位字符“V”不允许", id="letter-V"),
        pytest.param("Z1350100MA2Y123446", "position 1", "第1位字符“Z”不允许", id="letter-Z-first"),
        pytest.param("91350100MA2Y12344-", "position 18", "第18位字符“-”不允许", id="punctuation"),
        pytest.param("91350100MA2Y1234４6", "position 17", "第17位字符“４”不允许", id="fullwidth-digit"),
        pytest.param("9135A100MA2Y123446", "positions 3-8", "第3至8位", id="division-code-with-letter"),
        pytest.param("91X50100MA2Y123446", "positions 3-8", "第3至8位", id="division-code-letter-at-pos3"),
        pytest.param("91350100MA2Y123445", "position 18", "第18位校验码错误", id="only-pos18-wrong"),
        pytest.param("11110000000012343A", "position 18", "第18位校验码错误", id="only-pos18-wrong-2"),
    ],
)
def test_normalize_uscc_invalid(raw: str, english: str, chinese: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize_uscc(raw)
    assert english in exc.value.message
    assert chinese in _message_zh(exc)


@pytest.mark.parametrize(
    "valid",
    [
        pytest.param(VALID_USCC, id="example-1"),
        pytest.param(VALID_USCC_2, id="example-2"),
        pytest.param("N1110000MA01ABCD5L", id="letter-first-N"),
    ],
)
def test_normalize_uscc_refuses_code_whose_only_fault_is_pos17(valid: str) -> None:
    # Change the organisation-code check character, then recompute position 18 so that check passes.
    wrong17 = next(ch for ch in "0123456789X" if ch != valid[16])
    first17 = valid[:16] + wrong17
    code = first17 + uscc_check_character(first17)
    assert code[17] == uscc_check_character(code[:17])  # the 18th check alone would accept it
    with pytest.raises(Invalid) as exc:
        normalize_uscc(code)
    assert exc.value.message == "organization-code check character (position 17) is wrong"
    assert exc.value.message_zh == "第17位（组织机构代码校验位）错误"


def test_pos17_fault_concrete_example() -> None:
    # 91350100MA2Y12345 + its own GB 32100 check character "9": only position 17 is wrong.
    with pytest.raises(Invalid, match=r"position 17"):
        normalize_uscc("91350100MA2Y123459")


def test_normalize_uscc_messages_do_not_reveal_expected_check_character() -> None:
    with pytest.raises(Invalid) as exc:
        normalize_uscc("91350100MA2Y123445")
    # The right character is "6"; neither message may mention it.
    assert "6" not in exc.value.message
    assert "6" not in exc.value.message_zh


def test_random_prefixes_with_correct_pos17_accept_only_their_check_character() -> None:
    rng = random.Random(1234)  # noqa: S311 - reproducible test data, not crypto
    digits = "0123456789"
    for _ in range(300):
        first16 = (
            "".join(rng.choice(USCC_CHARSET) for _ in range(2))
            + "".join(rng.choice(digits) for _ in range(6))
            + "".join(rng.choice(USCC_CHARSET) for _ in range(8))
        )
        first17 = _with_pos17(first16)
        check = uscc_check_character(first17)
        assert check in USCC_CHARSET
        assert normalize_uscc(first17 + check) == first17 + check
        assert normalize_uscc((first17 + check).lower()) == first17 + check
        for other in USCC_CHARSET:
            if other == check:
                continue
            with pytest.raises(Invalid, match=r"position 18\) is wrong"):
                normalize_uscc(first17 + other)


@pytest.mark.parametrize(
    ("uscc", "province"),
    [
        pytest.param(VALID_USCC, "35", id="fujian"),
        pytest.param(VALID_USCC_2, "11", id="beijing"),
        pytest.param("52630000ABCDEFGH52", "63", id="qinghai"),
        pytest.param("93650100000000000F", "65", id="xinjiang"),
    ],
)
def test_uscc_province_code(uscc: str, province: str) -> None:
    assert uscc_province_code(uscc) == province


def test_uscc_province_code_refuses_malformed_code() -> None:
    with pytest.raises(Invalid):
        uscc_province_code("9135A100MA2Y123446")


# --- normalize_resident_id ---

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _resident_id(first17: str) -> str:
    """Test oracle: append the GB 11643-1999 check character."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


TODAY = datetime.date(2025, 6, 1)


@pytest.mark.parametrize(
    ("raw", "today", "expected"),
    [
        pytest.param("110105199003071239", None, "110105199003071239", id="reference-example-1"),
        pytest.param("11010119780615018X", None, "11010119780615018X", id="reference-example-2-X"),
        pytest.param("11010119780615018x", None, "11010119780615018X", id="lower-case-x-upper-cased"),
        pytest.param(" 11010119780615018x\n", None, "11010119780615018X", id="whitespace-stripped"),
        pytest.param("110101190001011236", None, "110101190001011236", id="boundary-19000101"),
        pytest.param(
            _resident_id("11010120000229123"), None, _resident_id("11010120000229123"), id="leap-day-2000"
        ),
        pytest.param("110101203001011236", None, "110101203001011236", id="future-ok-without-today"),
        pytest.param(
            _resident_id("11010120250601123"), TODAY, _resident_id("11010120250601123"), id="born-today"
        ),
        pytest.param("110105199003071239", TODAY, "110105199003071239", id="past-with-today"),
    ],
)
def test_normalize_resident_id_valid(raw: str, today: datetime.date | None, expected: str) -> None:
    assert normalize_resident_id(raw, today=today) == expected


def test_resident_id_oracle_matches_reference_examples() -> None:
    assert _resident_id("11010519900307123") == "110105199003071239"
    assert _resident_id("11010119780615018") == "11010119780615018X"


@pytest.mark.parametrize(
    ("raw", "today", "english", "chinese"),
    [
        pytest.param("11010519900307123", None, "18 characters", "应为18位", id="17-chars"),
        pytest.param("1101051990030712399", None, "18 characters", "应为18位", id="19-chars"),
        pytest.param("11010519900307123A", None, "18 characters", "应为18位", id="letter-check"),
        pytest.param("1101051990030X1239", None, "18 characters", "应为18位", id="X-in-body"),
        pytest.param("110105 99003071239", None, "18 characters", "应为18位", id="inner-space"),
        pytest.param(
            "110105199003071239".replace("9", "٩", 1), None, "18 characters", "应为18位", id="arabic-digit"
        ),
        pytest.param("110105199002301231", None, "not a valid date", "出生日期不是有效日期", id="19900230"),
        pytest.param("110105199013011239", None, "not a valid date", "出生日期不是有效日期", id="month-13"),
        pytest.param("110105199000011239", None, "not a valid date", "出生日期不是有效日期", id="month-00"),
        pytest.param(
            "110101190002291234", None, "not a valid date", "出生日期不是有效日期", id="19000229-no-leap"
        ),
        pytest.param(
            "110101203001011236", TODAY, "in the future", "出生日期晚于今天", id="future-with-today"
        ),
        pytest.param("110101202506021234", TODAY, "in the future", "出生日期晚于今天", id="tomorrow"),
        pytest.param("110101189912311234", None, "before 1900", "出生日期早于1900年", id="year-1899"),
        pytest.param("110105199003071238", None, "position 18", "第18位校验码错误", id="wrong-check-digit"),
        pytest.param("110105199003071230", None, "position 18", "第18位校验码错误", id="wrong-check-0"),
        pytest.param("11010519900307123X", None, "position 18", "第18位校验码错误", id="wrong-check-X"),
    ],
)
def test_normalize_resident_id_invalid(
    raw: str, today: datetime.date | None, english: str, chinese: str
) -> None:
    # Date faults are tested with a correct check character so the date is the only fault.
    if english in {"not a valid date", "in the future", "before 1900"}:
        raw = _resident_id(raw[:17])
    with pytest.raises(Invalid) as exc:
        normalize_resident_id(raw, today=today)
    assert english in exc.value.message
    assert chinese in _message_zh(exc)


def test_19900230_example_has_a_correct_check_character() -> None:
    assert _resident_id("11010519900230123") == "110105199002301231"
    with pytest.raises(Invalid) as exc:
        normalize_resident_id("110105199002301231")
    assert exc.value.message_zh == "出生日期不是有效日期"


def test_resident_id_messages_are_distinct() -> None:
    messages = set()
    for raw, today in [
        ("1101051990030712", None),
        ("110105199002301231", None),
        ("110101203001011236", TODAY),
        ("110105199003071238", None),
    ]:
        with pytest.raises(Invalid) as exc:
            normalize_resident_id(raw, today=today)
        messages.add((exc.value.message, exc.value.message_zh))
    assert len(messages) == 4


# --- normalize_postcode ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("010000", "010000", id="leading-zero"),
        pytest.param("100000", "100000", id="beijing"),
        pytest.param(" 350001 ", "350001", id="whitespace"),
    ],
)
def test_normalize_postcode_valid(raw: str, expected: str) -> None:
    assert normalize_postcode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("01000", id="5-digits"),
        pytest.param("0100000", id="7-digits"),
        pytest.param("01000A", id="letter"),
        pytest.param("", id="empty"),
        pytest.param("010 000", id="inner-space"),
        pytest.param("０１００００", id="fullwidth"),
        pytest.param("-10000", id="minus"),
    ],
)
def test_normalize_postcode_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize_postcode(raw)
    assert exc.value.message_zh == "应为6位数字"


# --- telephone numbers ---

VALID_LANDLINES = [
    pytest.param("010-12345678", "010-12345678", id="beijing-hyphen"),
    pytest.param("0571-8765432", "0571-8765432", id="4-digit-area-7-digit-number"),
    pytest.param("01012345678-123", "01012345678-123", id="no-hyphen-with-extension"),
    pytest.param("0591-87654321-123456", "0591-87654321-123456", id="6-digit-extension"),
    pytest.param("  021-87654321 ", "021-87654321", id="whitespace"),
]

INVALID_LANDLINES = [
    pytest.param("10-12345678", id="area-not-starting-with-0"),
    pytest.param("010-123456", id="6-digit-number"),
    pytest.param("010-123456789", id="9-digit-number"),
    pytest.param("010-12345678-1234567", id="7-digit-extension"),
    pytest.param("010--12345678", id="double-hyphen"),
    pytest.param("010 12345678", id="space-separator"),
    pytest.param("(010)12345678", id="parentheses"),
    pytest.param("010-1234567a", id="letter"),
    pytest.param("", id="empty"),
]

VALID_MOBILES = [
    pytest.param("13800138000", "13800138000", id="plain"),
    pytest.param("+8613800138000", "13800138000", id="plus-86"),
    pytest.param("008613800138000", "13800138000", id="0086"),
    pytest.param("138 0013 8000", "13800138000", id="spaces"),
    pytest.param("138-0013-8000", "13800138000", id="hyphens"),
    pytest.param("+86 138 0013 8000", "13800138000", id="plus-86-spaces"),
    pytest.param(" 19912345678 ", "19912345678", id="199-whitespace"),
]

INVALID_MOBILES = [
    pytest.param("12800138000", id="12x-refused"),
    pytest.param("10800138000", id="10x-refused"),
    pytest.param("1380013800", id="10-digits"),
    pytest.param("138001380001", id="12-digits"),
    pytest.param("+8512345678901", id="other-country-code"),
    pytest.param("8613800138000", id="86-without-plus"),
    pytest.param("+86+13800138000", id="double-plus"),
    pytest.param("-13800138000", id="leading-hyphen"),
    pytest.param("13800138000-", id="trailing-hyphen"),
    pytest.param("138.0013.8000", id="dots"),
    pytest.param("1380013800a", id="letter"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID_LANDLINES)
def test_normalize_landline_valid(raw: str, expected: str) -> None:
    assert normalize_landline(raw) == expected


@pytest.mark.parametrize("raw", [*INVALID_LANDLINES, pytest.param("13800138000", id="mobile")])
def test_normalize_landline_invalid(raw: str) -> None:
    with pytest.raises(Invalid, match="landline"):
        normalize_landline(raw)


@pytest.mark.parametrize(("raw", "expected"), VALID_MOBILES)
def test_normalize_mobile_valid(raw: str, expected: str) -> None:
    assert normalize_mobile(raw) == expected


@pytest.mark.parametrize("raw", [*INVALID_MOBILES, pytest.param("010-12345678", id="landline")])
def test_normalize_mobile_invalid(raw: str) -> None:
    with pytest.raises(Invalid, match="mobile"):
        normalize_mobile(raw)


@pytest.mark.parametrize(("raw", "expected"), [*VALID_LANDLINES, *VALID_MOBILES])
def test_normalize_phone_valid(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("12800138000", id="12x"),
        pytest.param("010-123456", id="short-landline"),
        pytest.param("hello", id="text"),
        pytest.param("", id="empty"),
    ],
)
def test_normalize_phone_invalid_has_one_message_covering_both(raw: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize_phone(raw)
    assert "landline" in exc.value.message
    assert "mobile" in exc.value.message
    assert "固定电话" in exc.value.message_zh
    assert "手机" in exc.value.message_zh


# --- normalize_email ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("zhang.san@example.gov.cn", "zhang.san@example.gov.cn", id="plain"),
        pytest.param("Zhang.San@Example.GOV.CN", "Zhang.San@example.gov.cn", id="domain-lower-cased-only"),
        pytest.param("  ca-admin+test@mail-1.example.cn\n", "ca-admin+test@mail-1.example.cn", id="strip"),
        pytest.param("a@b.co", "a@b.co", id="short"),
        pytest.param("x" * 64 + "@example.cn", "x" * 64 + "@example.cn", id="local-64"),
        pytest.param(
            "a@" + ".".join(["b" * 63] * 3) + "." + "c" * 60,
            "a@" + ".".join(["b" * 63] * 3) + "." + "c" * 60,
            id="total-254",
        ),
    ],
)
def test_normalize_email_valid(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("zhang.example.cn", id="no-at"),
        pytest.param("a@b@example.cn", id="two-at"),
        pytest.param("@example.cn", id="empty-local"),
        pytest.param("x" * 65 + "@example.cn", id="local-65"),
        pytest.param("zhang@localhost", id="domain-without-dot"),
        pytest.param("zhang@", id="empty-domain"),
        pytest.param("zhang@-example.cn", id="label-starts-with-hyphen"),
        pytest.param("zhang@example-.cn", id="label-ends-with-hyphen"),
        pytest.param("zhang@example..cn", id="empty-label"),
        pytest.param("zhang@.example.cn", id="leading-dot"),
        pytest.param("zhang@example.cn.", id="trailing-dot"),
        pytest.param("zhang@exa_mple.cn", id="underscore-in-domain"),
        pytest.param("zhang@例子.中国", id="non-ascii-domain"),
        pytest.param("zhang@" + "b" * 64 + ".cn", id="label-64"),
        pytest.param("zh ang@example.cn", id="space-in-local"),
        pytest.param("张三@example.cn", id="non-ascii-local"),
        pytest.param(".zhang@example.cn", id="local-leading-dot"),
        pytest.param("zh..ang@example.cn", id="local-double-dot"),
        pytest.param(
            "a@" + ".".join(["b" * 63] * 3) + "." + "c" * 61,
            id="total-255",
        ),
        pytest.param("", id="empty"),
    ],
)
def test_normalize_email_invalid(raw: str) -> None:
    with pytest.raises(Invalid):
        normalize_email(raw)


# --- normalize_institution_registration ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("110000001234", "110000001234", id="12-digit"),
        pytest.param("  350100004321 ", "350100004321", id="12-digit-whitespace"),
        pytest.param("事证第110000001234号", "110000001234", id="certificate-wording"),
        pytest.param(" 事证第 110000001234 号 ", "110000001234", id="certificate-wording-spaces"),
        pytest.param("12110000400000122Y", "12110000400000122Y", id="uscc-starting-12"),
        pytest.param("12110000400000122y", "12110000400000122Y", id="uscc-lower-case"),
        pytest.param("事证第12110000400000122Y号", "12110000400000122Y", id="uscc-with-wording"),
        pytest.param(VALID_USCC_2, VALID_USCC_2, id="uscc-starting-11"),
    ],
)
def test_normalize_institution_registration_valid(raw: str, expected: str) -> None:
    assert normalize_institution_registration(raw) == expected


def test_institution_uscc_example_is_valid_uscc() -> None:
    assert _complete("1211000040000012") == "12110000400000122Y"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param("11000000123", "12位证书号或18位", id="11-digits"),
        pytest.param("1100000012345", "12位证书号或18位", id="13-digits"),
        pytest.param("", "12位证书号或18位", id="empty"),
        pytest.param("事证第号", "12位证书号或18位", id="wording-only"),
        pytest.param("11000000123A", "全部为数字", id="12-with-letter"),
        pytest.param("010000001234", "首位为1至8", id="12-starting-0"),
        pytest.param("910000001234", "首位为1至8", id="12-starting-9"),
        pytest.param(VALID_USCC, "应以1开头", id="uscc-of-a-company"),
        pytest.param("N1110000MA01ABCD5L", "应以1开头", id="uscc-letter-first"),
        pytest.param("12110000400000122X", "第18位校验码错误", id="uscc-bad-check"),
        pytest.param("12110000400000132Y", "第17位", id="uscc-bad-pos17"),
        pytest.param("事证第110000001234", "12位证书号或18位", id="wording-without-hao"),
    ],
)
def test_normalize_institution_registration_invalid(raw: str, fragment: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize_institution_registration(raw)
    assert fragment in exc.value.message_zh
