"""Behaviour of pki.application.validate_application: one 附件7 record in, normalized values or all errors."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from pki.application import FIELD_LABELS, REQUIRED_FIELDS, validate_application
from pki.enums import AccessType, CredentialType, HandlerIdType, Network
from pki.errors import FieldError, ValidationError
from pki.validators import USCC_CHARSET, uscc_check_character
from policies import Policies, load_policies
from tests.support.data import application, make_uscc

TODAY = date(2020, 10, 20)
POLICIES = load_policies()

# A valid Beijing credit code built independently of the sample's.
BEIJING_USCC = make_uscc("110105", "12345678")

# GB 11643-1999, written out here so the test does not lean on the code under test.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _resident_id(first17: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def _validate(raw: dict[str, Any], policies: Policies = POLICIES) -> dict[str, Any]:
    return validate_application(raw, policies=policies, today=TODAY)


def _errors(raw: dict[str, Any], policies: Policies = POLICIES) -> tuple[FieldError, ...]:
    with pytest.raises(ValidationError) as exc:
        _validate(raw, policies)
    return exc.value.errors


def _only_error(raw: dict[str, Any], policies: Policies = POLICIES) -> FieldError:
    """The single error the record raises; also checks the Chinese message starts with the form's label."""
    errors = _errors(raw, policies)
    assert len(errors) == 1, errors
    (err,) = errors
    label = FIELD_LABELS.get(err.field, err.field)
    assert err.message_zh.startswith(f"{label}："), err.message_zh
    return err


def _assert_refused(raw: dict[str, Any], field: str, message: str, policies: Policies = POLICIES) -> None:
    err = _only_error(raw, policies)
    assert (err.field, err.message) == (field, message)


# --- the valid sample and normalization ---


def test_sample_passes_and_is_normalized() -> None:
    raw = application(
        handler_id_number="11010119780615018x",
        province="北京市",
        postal_code=" 100032 ",
        validity_months="24",
        agreement_accepted="是",
        network="政务外网",
        access_type="正式接入",
    )
    out = _validate(raw)

    assert set(out) == set(FIELD_LABELS)
    assert out["handler_id_number"] == "11010119780615018X"
    assert out["province"] == "北京"
    assert out["postal_code"] == "100032"
    assert out["validity_months"] == 24
    assert type(out["validity_months"]) is int
    assert out["agreement_accepted"] is True
    assert out["application_date"] == date(2020, 10, 19)
    assert type(out["application_date"]) is date
    assert out["handler_id_type"] is HandlerIdType.RESIDENT_ID
    assert out["credential_type"] is CredentialType.USCC
    assert out["network"] is Network.EXTRANET
    assert out["access_type"] is AccessType.FORMAL
    assert out["credential_number"] == "11110000000012343B"
    assert out["unit_name"] == "北京市某能源监测中心"
    # Optional free text left empty comes back as "" rather than missing.
    assert out["township"] == ""
    assert out["industry"] == ""


def test_sample_as_given_passes_unchanged_where_already_canonical() -> None:
    raw = application()
    out = _validate(raw)
    for key in ("unit_name", "unit_phone", "email", "handler_id_number", "credential_number", "province"):
        assert out[key] == raw[key]
    assert out["validity_months"] == 12


def test_input_mapping_is_not_modified() -> None:
    raw = application(postal_code=" 100032 ", unit_nmae="typo")
    before = dict(raw)
    with pytest.raises(ValidationError):
        _validate(raw)
    assert raw == before


def test_text_is_stripped() -> None:
    out = _validate(application(unit_name="  某单位  ", county=" 西城区\n"))
    assert out["unit_name"] == "某单位"
    assert out["county"] == "西城区"


# --- required fields ---

EXPECTED_REQUIRED = (
    "unit_name",
    "legal_representative",
    "unit_phone",
    "unit_fax",
    "handler_name",
    "handler_contact",
    "province",
    "address",
    "email",
    "postal_address",
    "postal_code",
    "handler_id_type",
    "handler_id_number",
    "credential_type",
    "credential_number",
    "network",
    "access_type",
    "target_system",
    "validity_months",
    "agreement_accepted",
    "application_date",
)


def test_required_fields_are_the_forms_required_fields() -> None:
    assert set(EXPECTED_REQUIRED) == REQUIRED_FIELDS


_MISSING = object()


@pytest.mark.parametrize("field", EXPECTED_REQUIRED)
@pytest.mark.parametrize(
    "blank",
    [
        pytest.param(_MISSING, id="missing"),
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param(" \t ", id="whitespace"),
    ],
)
def test_required_field_missing_or_blank(field: str, blank: object) -> None:
    raw = application()
    if blank is _MISSING:
        del raw[field]
    else:
        raw[field] = blank
    err = _only_error(raw)
    assert err.field == field
    assert err.message == "is required"
    assert err.message_zh == f"{FIELD_LABELS[field]}：必填"


@pytest.mark.parametrize(
    "field",
    [
        "county",
        "township",
        "industry",
        "location",
        "ownership_type",
        "energy_consumption",
        "main_energy_types",
    ],
)
def test_optional_text_may_be_missing(field: str) -> None:
    raw = application()
    raw.pop(field, None)
    assert _validate(raw)[field] == ""


# --- several faults, unknown keys, wrong types ---


def test_several_bad_fields_are_all_named_once() -> None:
    raw = application(
        postal_code="12345",
        email="not-an-email",
        validity_months=13,
        unit_name="",
        agreement_accepted="否",
        application_date="2020/10/01",
    )
    errors = _errors(raw)
    fields = [e.field for e in errors]
    assert sorted(fields) == sorted(
        ["postal_code", "email", "validity_months", "unit_name", "agreement_accepted", "application_date"]
    )
    assert len(fields) == len(set(fields))
    for e in errors:
        assert e.message_zh.startswith(FIELD_LABELS[e.field] + "：")


def test_required_wins_over_format_for_the_same_field() -> None:
    raw = application(unit_name="   ", validity_months="")
    errors = {e.field: e.message for e in _errors(raw)}
    assert errors == {"unit_name": "is required", "validity_months": "is required"}


def test_validation_error_message_lists_every_field() -> None:
    with pytest.raises(ValidationError) as exc:
        _validate(application(postal_code="1", email="x"))
    assert "postal_code" in exc.value.message
    assert "email" in exc.value.message
    assert "邮编" in exc.value.message_zh
    assert "Email" in exc.value.message_zh


@pytest.mark.parametrize("key", ["unit_nmae", "password", "Province"])
def test_unknown_key_is_refused_by_name(key: str) -> None:
    err = _only_error(application(**{key: "x"}))
    assert (err.field, err.message) == (key, "unknown field")
    assert err.message_zh == f"{key}：未知字段"


def test_several_unknown_keys_each_named() -> None:
    errors = _errors(application(zzz="1", aaa="2"))
    assert [(e.field, e.message) for e in errors] == [("aaa", "unknown field"), ("zzz", "unknown field")]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("postal_code", 100032, id="postal_code-int"),
        pytest.param("unit_name", 123, id="unit_name-int"),
        pytest.param("unit_phone", 1012345678, id="unit_phone-int"),
        pytest.param("handler_id_number", 110105199003071239, id="handler_id_number-int"),
        pytest.param("credential_number", ["11110000000012343B"], id="credential_number-list"),
        pytest.param("province", 11, id="province-int"),
        pytest.param("network", True, id="network-bool"),
        pytest.param("email", {"a": "b"}, id="email-dict"),
        pytest.param("county", 3.5, id="optional-county-float"),
    ],
)
def test_non_text_value_for_text_field_is_refused(field: str, value: Any) -> None:
    err = _only_error(application(**{field: value}))
    assert (err.field, err.message) == (field, "must be text")
    assert err.message_zh == f"{FIELD_LABELS[field]}：应为文本"


# --- credential number and province ---


def _with_wrong_position_17(code: str) -> str:
    wrong = next(ch for ch in "0123456789" if ch != code[16])
    first17 = code[:16] + wrong
    return first17 + uscc_check_character(first17)


def _with_wrong_position_18(code: str) -> str:
    return code[:17] + next(ch for ch in USCC_CHARSET if ch != code[17])


@pytest.mark.parametrize(
    ("number", "message"),
    [
        pytest.param(
            _with_wrong_position_17(BEIJING_USCC),
            "organization-code check character (position 17) is wrong",
            id="only-position-17-wrong",
        ),
        pytest.param(
            _with_wrong_position_18(BEIJING_USCC),
            "check character (position 18) is wrong",
            id="only-position-18-wrong",
        ),
        pytest.param(BEIJING_USCC[:17], "must be 18 characters long (got 17)", id="too-short"),
        pytest.param(
            BEIJING_USCC[:10] + "I" + BEIJING_USCC[11:],
            "character 'I' at position 11 is not allowed (letters I, O, S, V, Z are never used)",
            id="letter-I",
        ),
    ],
)
def test_bad_uscc_is_refused(number: str, message: str) -> None:
    _assert_refused(application(credential_number=number), "credential_number", message)


def test_wrong_position_17_helper_really_only_breaks_position_17() -> None:
    code = _with_wrong_position_17(BEIJING_USCC)
    assert code[17] == uscc_check_character(code[:17])
    assert code[:16] == BEIJING_USCC[:16]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param(BEIJING_USCC, BEIJING_USCC, id="valid"),
        pytest.param(f"  {BEIJING_USCC.lower()} ", BEIJING_USCC, id="lower-case-and-spaces"),
    ],
)
def test_valid_uscc_is_normalized(number: str, expected: str) -> None:
    assert _validate(application(credential_number=number))["credential_number"] == expected


@pytest.mark.parametrize(
    ("province", "number", "owner"),
    [
        pytest.param("上海", BEIJING_USCC, "北京", id="shanghai-with-beijing-code"),
        pytest.param("上海市", "11110000000012343B", "北京", id="alias-with-beijing-code"),
        pytest.param("北京", make_uscc("650100", "ABCDEFGH"), "新疆", id="beijing-with-xinjiang-code"),
    ],
)
def test_province_must_match_uscc_division(province: str, number: str, owner: str) -> None:
    err = _only_error(application(province=province, credential_number=number))
    assert err.field == "province"
    assert f"division code {number[2:4]} ({owner})" in err.message
    assert err.message_zh == f"省份：与统一社会信用代码中的行政区划（{owner}）不一致"


def test_province_mismatch_checked_for_institution_uscc_too() -> None:
    number = make_uscc("310000", "12345678", dept="1")
    err = _only_error(
        application(credential_type="institution_registration", credential_number=number, province="北京")
    )
    assert err.field == "province"


@pytest.mark.parametrize(
    ("province", "division"),
    [
        pytest.param("北京", "990000", id="division-99-unknown"),
        pytest.param("上海", "000000", id="division-00-unknown"),
    ],
)
def test_division_unknown_to_table_is_not_a_mismatch(province: str, division: str) -> None:
    number = make_uscc(division, "12345678")
    out = _validate(application(province=province, credential_number=number))
    assert out["province"] == province
    assert out["credential_number"] == number


@pytest.mark.parametrize(
    ("province", "canonical"),
    [
        pytest.param("北京", "北京", id="canonical"),
        pytest.param("北京市", "北京", id="alias"),
        pytest.param("  北京市 ", "北京", id="alias-with-spaces"),
    ],
)
def test_province_is_canonicalized(province: str, canonical: str) -> None:
    assert _validate(application(province=province))["province"] == canonical


@pytest.mark.parametrize("province", ["Beijing", "北平", "北京省"])
def test_unknown_province_is_refused(province: str) -> None:
    err = _only_error(application(province=province))
    assert (err.field, err.message) == ("province", f"unknown province {province!r}")
    assert err.message_zh == "省份：省份名称无效"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param("110000123456", "110000123456", id="12-digits"),
        pytest.param("事证第110000123456号", "110000123456", id="12-digits-with-wrapper"),
        pytest.param("11110000000012343B", "11110000000012343B", id="institution-uscc"),
    ],
)
def test_institution_registration_accepted(number: str, expected: str) -> None:
    out = _validate(application(credential_type="institution_registration", credential_number=number))
    assert out["credential_type"] is CredentialType.INSTITUTION_REGISTRATION
    assert out["credential_number"] == expected


@pytest.mark.parametrize(
    ("number", "message"),
    [
        pytest.param(
            "910000123456",
            "a 12-digit certificate number must start with a division code (first digit 1-8)",
            id="12-digits-first-9",
        ),
        pytest.param(
            BEIJING_USCC,
            "a public institution's credit code must start with 1",
            id="company-uscc",
        ),
        pytest.param(
            "12345",
            "must be a 12-digit certificate number or an 18-character unified social credit code",
            id="wrong-length",
        ),
    ],
)
def test_institution_registration_refused(number: str, message: str) -> None:
    raw = application(credential_type="institution_registration", credential_number=number)
    _assert_refused(raw, "credential_number", message)


# --- handler's identity document ---


def test_resident_id_with_impossible_birth_date_is_refused() -> None:
    number = _resident_id("110105" + "19900230" + "123")  # check character correct: the date is the fault
    _assert_refused(
        application(handler_id_number=number),
        "handler_id_number",
        "birth date (positions 7-14) is not a valid date",
    )


def test_resident_id_helper_builds_valid_numbers() -> None:
    number = _resident_id("110105" + "19900307" + "123")
    assert _validate(application(handler_id_number=number))["handler_id_number"] == number


@pytest.mark.parametrize(
    ("number", "message"),
    [
        pytest.param("110105199003071238", "check character (position 18) is wrong", id="bad-check"),
        pytest.param(
            "11010519900307123", "must be 18 characters: 17 digits followed by a digit or X", id="17-chars"
        ),
        pytest.param(
            _resident_id("110105" + "20201021" + "123"),
            "birth date (positions 7-14) is in the future",
            id="born-tomorrow",
        ),
    ],
)
def test_bad_resident_id_is_refused(number: str, message: str) -> None:
    _assert_refused(application(handler_id_number=number), "handler_id_number", message)


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("护照E12345678", id="passport"),
        pytest.param("军官证 第123号", id="with-space"),
        pytest.param("A" * 32, id="32-chars"),
        pytest.param("110105199003071238", id="resident-id-rules-not-applied"),
    ],
)
@pytest.mark.parametrize("id_type", ["other", "其它", "其他"])
def test_other_id_type_accepts_free_text(id_type: str, number: str) -> None:
    out = _validate(application(handler_id_type=id_type, handler_id_number=f" {number} "))
    assert out["handler_id_type"] is HandlerIdType.OTHER
    assert out["handler_id_number"] == number


def test_other_id_type_refuses_more_than_32_characters() -> None:
    raw = application(handler_id_type="other", handler_id_number="A" * 33)
    _assert_refused(raw, "handler_id_number", "at most 32 characters")


@pytest.mark.parametrize("number", ["AB\n123", "AB\t123", "AB\x00123"])
def test_other_id_number_with_line_break_is_refused(number: str) -> None:
    raw = application(handler_id_type="other", handler_id_number=number)
    assert _only_error(raw).field == "handler_id_number"


# --- validity ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(12, 12, id="12"),
        pytest.param(24, 24, id="24"),
        pytest.param(36, 36, id="36"),
        pytest.param(48, 48, id="48"),
        pytest.param(60, 60, id="60"),
        pytest.param("24", 24, id="string-24"),
        pytest.param(" 36 ", 36, id="string-36-with-spaces"),
    ],
)
def test_validity_accepted(value: Any, expected: int) -> None:
    assert _validate(application(validity_months=value))["validity_months"] == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(13, id="13"),
        pytest.param(0, id="0"),
        pytest.param(72, id="72"),
        pytest.param(-12, id="minus-12"),
        pytest.param(True, id="True"),
        pytest.param(False, id="False"),
        pytest.param("abc", id="abc"),
        pytest.param("-12", id="string-minus-12"),
        pytest.param("12.0", id="string-12.0"),
        pytest.param(12.0, id="float-12"),
        pytest.param("13", id="string-13"),
    ],
)
def test_validity_refused(value: Any) -> None:
    err = _only_error(application(validity_months=value))
    assert (err.field, err.message) == ("validity_months", "must be one of 12, 24, 36, 48, 60 months")
    assert err.message_zh == "有效期：应为12、24、36、48、60个月之一"


@pytest.mark.parametrize("value", ["²", "12²"])
def test_validity_with_non_decimal_digit_is_a_validation_error(value: str) -> None:
    err = _only_error(application(validity_months=value))
    assert err.field == "validity_months"


def test_validity_choices_are_policy_data(tmp_path: Path) -> None:
    (tmp_path / "form.toml").write_text(
        "validity_months = [6, 12]\nearliest_application_date = 2020-01-01\n", encoding="utf-8"
    )
    policies = load_policies(tmp_path)
    assert policies.form.validity_months == (6, 12)

    assert _validate(application(validity_months=6), policies)["validity_months"] == 6
    err = _only_error(application(validity_months=24), policies)
    assert (err.field, err.message) == ("validity_months", "must be one of 6, 12 months")
    assert err.message_zh == "有效期：应为6、12个月之一"


# --- service agreement ---


@pytest.mark.parametrize(
    "value",
    [True, "是", "yes", "YES", " Yes ", "同意", "true", "y", "1"],
    ids=["True", "shi", "yes", "YES", "Yes-spaces", "tongyi", "true", "y", "string-1"],
)
def test_agreement_accepted(value: Any) -> None:
    assert _validate(application(agreement_accepted=value))["agreement_accepted"] is True


@pytest.mark.parametrize(
    "value",
    [False, "否", "no", "NO", "不同意", "false", "0"],
    ids=["False", "fou", "no", "NO", "butongyi", "false", "0"],
)
def test_agreement_declined_cannot_proceed(value: Any) -> None:
    err = _only_error(application(agreement_accepted=value))
    assert (err.field, err.message) == ("agreement_accepted", "the service agreement must be accepted")
    assert err.message_zh == f"{FIELD_LABELS['agreement_accepted']}：未同意电子认证服务协议，不能申请"


@pytest.mark.parametrize(
    "value", ["maybe", "是的吧", 1, 0, 1.0], ids=["maybe", "shi-de-ba", "int-1", "int-0", "float"]
)
def test_agreement_not_yes_or_no(value: Any) -> None:
    err = _only_error(application(agreement_accepted=value))
    assert (err.field, err.message) == ("agreement_accepted", "must be yes or no")


# --- application date ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2020-10-20", TODAY, id="today"),
        pytest.param(TODAY, TODAY, id="today-as-date"),
        pytest.param(" 2020-10-19 ", date(2020, 10, 19), id="yesterday-with-spaces"),
        pytest.param("2020-01-01", date(2020, 1, 1), id="earliest-day"),
    ],
)
def test_application_date_accepted(value: Any, expected: date) -> None:
    out = _validate(application(application_date=value))
    assert out["application_date"] == expected
    assert type(out["application_date"]) is date


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("2020-10-21", "lies in the future", id="tomorrow"),
        pytest.param(date(2020, 10, 21), "lies in the future", id="tomorrow-as-date"),
        pytest.param("2019-12-31", "before 2020-01-01", id="day-before-earliest"),
        pytest.param("2020/10/01", "must be a date YYYY-MM-DD", id="slashes"),
        pytest.param("2020-02-30", "must be a date YYYY-MM-DD", id="impossible-date"),
        pytest.param("昨天", "must be a date YYYY-MM-DD", id="word"),
        pytest.param(datetime(2020, 10, 19, 9, 30), "must be a date YYYY-MM-DD", id="datetime-object"),
        pytest.param(20201019, "must be a date YYYY-MM-DD", id="int"),
    ],
)
def test_application_date_refused(value: Any, message: str) -> None:
    _assert_refused(application(application_date=value), "application_date", message)


def test_application_date_messages_in_chinese() -> None:
    assert _only_error(application(application_date="2020-10-21")).message_zh == "申请日期：不能晚于今天"
    assert (
        _only_error(application(application_date="2019-12-31")).message_zh == "申请日期：不能早于2020-01-01"
    )


@pytest.mark.parametrize("value", ["20201019", "2020-W43-1"], ids=["compact", "iso-week"])
def test_application_date_only_in_advertised_format(value: str) -> None:
    _assert_refused(application(application_date=value), "application_date", "must be a date YYYY-MM-DD")


# --- enum values and their aliases ---


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("network", "政务外网", Network.EXTRANET, id="zhengwu-waiwang"),
        pytest.param("network", "互联网", Network.INTERNET, id="hulianwang"),
        pytest.param("network", "internet", Network.INTERNET, id="internet"),
        pytest.param("access_type", "测试接入", AccessType.TEST, id="ceshi-jieru"),
        pytest.param("access_type", "测试", AccessType.TEST, id="ceshi"),
        pytest.param("access_type", "正式接入", AccessType.FORMAL, id="zhengshi-jieru"),
        pytest.param("access_type", " formal ", AccessType.FORMAL, id="formal-with-spaces"),
        pytest.param("handler_id_type", "身份证", HandlerIdType.RESIDENT_ID, id="shenfenzheng"),
        pytest.param(
            "credential_type", "统一社会信用代码", CredentialType.USCC, id="tongyi-shehui-xinyong-daima"
        ),
        pytest.param(
            "credential_type",
            "事业单位法人登记证",
            CredentialType.INSTITUTION_REGISTRATION,
            id="shiye-danwei",
        ),
    ],
)
def test_enum_aliases(field: str, value: str, expected: Any) -> None:
    assert _validate(application(**{field: value}))[field] is expected


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        pytest.param("network", "Extranet", "extranet, internet", id="network-wrong-case"),
        pytest.param("network", "卫星", "extranet, internet", id="network-unknown"),
        pytest.param("access_type", "试用", "test, formal", id="access-unknown"),
        pytest.param(
            "credential_type", "营业执照", "uscc, institution_registration", id="credential-unknown"
        ),
        pytest.param("handler_id_type", "passport", "resident_id, other", id="id-type-unknown"),
    ],
)
def test_unknown_enum_value_is_refused(field: str, value: str, allowed: str) -> None:
    err = _only_error(application(**{field: value}))
    assert (err.field, err.message) == (field, f"must be one of {allowed}")
    assert err.message_zh == f"{FIELD_LABELS[field]}：取值无效"


# --- free text: single line, length ---


@pytest.mark.parametrize("field", ["unit_name", "legal_representative", "address", "target_system", "county"])
@pytest.mark.parametrize("bad", ["\n", "\r\n", "\r", "\t", "\x00"], ids=["LF", "CRLF", "CR", "TAB", "NUL"])
def test_line_breaks_and_control_characters_refused(field: str, bad: str) -> None:
    err = _only_error(application(**{field: f"第一行{bad}第二行"}))
    assert (err.field, err.message) == (field, "must be a single line")
    assert err.message_zh == f"{FIELD_LABELS[field]}：不能包含换行或控制字符"


@pytest.mark.parametrize(
    "bad", ["\x0b", "\x0c", "\x1b", "\x85", "\u2028"], ids=["VT", "FF", "ESC", "NEL", "LINE-SEPARATOR"]
)
def test_other_line_breaks_and_control_characters_refused(bad: str) -> None:
    err = _only_error(application(unit_name=f"第一行{bad}第二行"))
    assert err.field == "unit_name"


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        pytest.param("unit_name", 64, id="unit_name"),
        pytest.param("legal_representative", 32, id="legal_representative"),
        pytest.param("address", 128, id="address"),
        pytest.param("township", 32, id="township"),
    ],
)
def test_text_length_limit(field: str, limit: int) -> None:
    assert _validate(application(**{field: "单" * limit}))[field] == "单" * limit
    err = _only_error(application(**{field: "单" * (limit + 1)}))
    assert (err.field, err.message) == (field, f"at most {limit} characters")
    assert err.message_zh == f"{FIELD_LABELS[field]}：不能超过{limit}个字"


def test_length_counted_after_stripping() -> None:
    assert _validate(application(unit_name=" " + "单" * 64 + " "))["unit_name"] == "单" * 64


def test_legacy_registration_number_division_must_match_province() -> None:
    raw = application(
        credential_type="institution_registration", credential_number="310000001234", province="北京"
    )
    err = _only_error(raw)
    assert err.field == "province" and "上海" in err.message_zh
    ok = application(credential_type="institution_registration", credential_number="110000001234")
    assert _validate(ok)["credential_number"] == "110000001234"
