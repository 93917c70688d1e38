"""Policy data: loading the packaged TOML, overriding it per file, refusing malformed files, evaluating it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pki.enums import Action, Role
from pki.errors import ConfigurationError
from policies import load_policies
from policies._load import PACKAGED

POLICIES = load_policies()
WORKFLOW = POLICIES.workflow

ENTRY_RULE = "entry-not-accept-or-review"
ACCEPTOR_RULE = "acceptor-not-countersign-or-review"
HEAD_RULE = "head-not-review"
REVIEWER_RULE = "reviewer-not-distribute"


def _packaged(name: str) -> str:
    return (PACKAGED / name).read_text(encoding="utf-8")


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _edited(name: str, old: str, new: str) -> str:
    """The packaged file with exactly one occurrence of ``old`` replaced."""
    text = _packaged(name)
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- the packaged policies ---


def test_packaged_policies_load() -> None:
    assert POLICIES.form.validity_months == (12, 24, 36, 48, 60)
    assert POLICIES.form.earliest_application_date == date(2020, 1, 1)
    assert type(POLICIES.form.earliest_application_date) is date
    assert len(POLICIES.provinces.by_code) == 35


def test_every_action_has_roles() -> None:
    assert set(WORKFLOW.roles_for) == set(Action)
    for action, roles in WORKFLOW.roles_for.items():
        assert roles, action
        assert all(isinstance(r, Role) for r in roles)


def test_separation_rules_are_explained() -> None:
    assert [r.name for r in WORKFLOW.separation] == [ENTRY_RULE, ACCEPTOR_RULE, HEAD_RULE, REVIEWER_RULE]
    for rule in WORKFLOW.separation:
        assert rule.reason.strip(), rule.name
        assert rule.reason_zh.strip(), rule.name
        assert rule.did
        assert rule.may_not
        assert rule.did.isdisjoint(rule.may_not)


def test_loaded_policy_is_read_only() -> None:
    with pytest.raises(TypeError):
        WORKFLOW.roles_for[Action.ISSUE] = frozenset({Role.ENTRY})  # type: ignore[index]
    with pytest.raises(TypeError):
        POLICIES.provinces.by_code["99"] = POLICIES.provinces.by_code["11"]  # type: ignore[index]


# --- roles per action ---


@pytest.mark.parametrize(
    ("roles", "action", "allowed"),
    [
        pytest.param({"entry"}, Action.ENTER, True, id="entry-enters"),
        pytest.param({"entry"}, Action.EDIT, True, id="entry-edits"),
        pytest.param({"entry"}, Action.ACCEPT, False, id="entry-not-accept"),
        pytest.param({"acceptor"}, Action.ACCEPT, True, id="acceptor-accepts"),
        pytest.param({"acceptor"}, Action.DISAGREE, True, id="acceptor-disagrees"),
        pytest.param({"acceptor"}, Action.COUNTERSIGN, False, id="acceptor-not-countersign"),
        pytest.param({"head"}, Action.COUNTERSIGN, True, id="head-countersigns"),
        pytest.param({"head"}, Action.APPROVE, False, id="head-role-alone-not-approve"),
        pytest.param({"reviewer"}, Action.APPROVE, True, id="reviewer-approves"),
        pytest.param({"reviewer"}, Action.RETURN, True, id="reviewer-returns"),
        pytest.param({"reviewer"}, Action.REJECT, True, id="reviewer-rejects"),
        pytest.param({"reviewer"}, Action.ISSUE, False, id="reviewer-not-issue"),
        pytest.param({"distributor"}, Action.ISSUE, True, id="distributor-issues"),
        pytest.param({"distributor"}, Action.DISTRIBUTE, True, id="distributor-distributes"),
        pytest.param({"entry"}, Action.CANCEL, True, id="entry-cancels"),
        pytest.param({"head"}, Action.CANCEL, True, id="head-cancels"),
        pytest.param({"ops"}, Action.CANCEL, True, id="ops-cancels"),
        pytest.param({"reviewer"}, Action.CANCEL, False, id="reviewer-not-cancel"),
        pytest.param({"admin"}, Action.ENTER, False, id="admin-not-enter"),
        pytest.param({"admin"}, Action.APPROVE, False, id="admin-not-approve"),
        pytest.param(set(), Action.ENTER, False, id="no-roles"),
        pytest.param({"head", "reviewer"}, Action.APPROVE, True, id="any-role-suffices"),
        pytest.param({"janitor"}, Action.ENTER, False, id="unknown-role-string"),
    ],
)
def test_role_allows(roles: set[str], action: Action, allowed: bool) -> None:
    assert WORKFLOW.role_allows(roles, action) is allowed


def test_admin_holds_no_workflow_action() -> None:
    assert not any(WORKFLOW.role_allows({"admin"}, a) for a in Action)


# --- separation of duties ---

_FORBIDDEN = [
    *[
        (did, later, ENTRY_RULE)
        for did in ("enter", "edit")
        for later in ("accept", "disagree", "approve", "return", "reject")
    ],
    *[
        (did, later, ACCEPTOR_RULE)
        for did in ("accept", "disagree")
        for later in ("countersign", "approve", "return", "reject")
    ],
    *[(did, later, HEAD_RULE) for did in ("countersign",) for later in ("approve", "return", "reject")],
    *[
        (did, later, REVIEWER_RULE)
        for did in ("approve", "return", "reject")
        for later in ("issue", "distribute")
    ],
]


@pytest.mark.parametrize(
    ("did", "later", "rule"), [pytest.param(d, la, r, id=f"{d}-then-{la}") for d, la, r in _FORBIDDEN]
)
def test_conflict_forbidden(did: str, later: str, rule: str) -> None:
    found = WORKFLOW.conflict([Action(did)], Action(later))
    assert found is not None
    assert found.name == rule


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        # workflow.toml has no rule against these: the enterer may countersign, issue and distribute.
        pytest.param(["enter"], "countersign", id="enterer-may-countersign"),
        pytest.param(["enter", "edit"], "issue", id="enterer-may-issue"),
        pytest.param(["enter"], "distribute", id="enterer-may-distribute"),
        pytest.param(["enter"], "edit", id="enterer-may-edit"),
        pytest.param(["enter"], "cancel", id="enterer-may-cancel"),
        pytest.param(["countersign"], "cancel", id="head-may-cancel"),
        pytest.param(["countersign"], "issue", id="head-may-issue"),
        pytest.param(["accept"], "issue", id="acceptor-may-issue"),
        pytest.param(["accept"], "disagree", id="acceptor-may-change-opinion"),
        pytest.param(["approve"], "approve", id="reviewer-may-review-again"),
        pytest.param(["issue"], "distribute", id="issuer-may-distribute"),
        pytest.param(["return"], "cancel", id="reviewer-may-cancel"),
        pytest.param([], "approve", id="nothing-done-before"),
    ],
)
def test_no_conflict(earlier: list[str], later: str) -> None:
    assert WORKFLOW.conflict([Action(a) for a in earlier], Action(later)) is None


def test_conflict_reports_the_first_rule_broken() -> None:
    rule = WORKFLOW.conflict([Action.ACCEPT, Action.ENTER], Action.APPROVE)
    assert rule is not None
    assert rule.name == ENTRY_RULE


def test_conflict_accepts_any_iterable() -> None:
    rule = WORKFLOW.conflict(iter([Action.EDIT]), Action.ACCEPT)
    assert rule is not None
    assert rule.name == ENTRY_RULE


# --- malformed policy files ---


@pytest.mark.parametrize(
    ("name", "text", "must_name"),
    [
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", "[actions]\n", '[actions]\nfrobnicate = ["entry"]\n'),
            ["workflow.toml", "[actions]", "frobnicate"],
            id="unknown-action",
        ),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", 'enter = ["entry"]', 'enter = ["janitor"]'),
            ["workflow.toml", "[actions]", "enter", "janitor"],
            id="unknown-role",
        ),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", 'cancel = ["entry", "head", "ops"]\n', ""),
            ["workflow.toml", "[actions]", "cancel"],
            id="missing-action",
        ),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", 'enter = ["entry"]', 'enter = "entry"'),
            ["workflow.toml", "[actions]", "'enter'", "list"],
            id="roles-not-a-list",
        ),
        pytest.param(
            "workflow.toml",
            _edited(
                "workflow.toml", 'reason = "whoever entered a request may not accept or review it"\n', ""
            ),
            ["workflow.toml", "[[separation]] #1", "'reason'"],
            id="separation-missing-reason",
        ),
        pytest.param(
            "workflow.toml",
            _edited(
                "workflow.toml",
                'may_not = ["issue", "distribute", "complete"]',
                'may_not = ["issue", "shred"]',
            ),
            ["workflow.toml", "[[separation]] #4", "shred"],
            id="separation-unknown-action",
        ),
        pytest.param(
            "form.toml",
            _edited("form.toml", "validity_months = [12, 24, 36, 48, 60]", "validity_months = 12"),
            ["form.toml", "validity_months", "list"],
            id="validity-not-a-list",
        ),
        pytest.param(
            "form.toml",
            _edited("form.toml", "validity_months = [12, 24, 36, 48, 60]", "validity_months = [0, 12]"),
            ["form.toml", "validity_months"],
            id="validity-contains-0",
        ),
        pytest.param(
            "form.toml",
            _edited("form.toml", "validity_months = [12, 24, 36, 48, 60]", "validity_months = [true, 12]"),
            ["form.toml", "validity_months"],
            id="validity-contains-bool",
        ),
        pytest.param(
            "form.toml",
            _edited("form.toml", "validity_months = [12, 24, 36, 48, 60]", "validity_months = []"),
            ["form.toml", "validity_months"],
            id="validity-empty",
        ),
        pytest.param(
            "form.toml",
            _edited("form.toml", "validity_months = [12, 24, 36, 48, 60]", 'validity_months = ["12"]'),
            ["form.toml", "validity_months"],
            id="validity-contains-string",
        ),
        pytest.param(
            "form.toml",
            _edited(
                "form.toml",
                "earliest_application_date = 2020-01-01",
                'earliest_application_date = "2020-01-01"',
            ),
            ["form.toml", "earliest_application_date", "date"],
            id="earliest-date-a-string",
        ),
        pytest.param(
            "form.toml",
            "validity_months = [12]\n",
            ["form.toml", "earliest_application_date"],
            id="earliest-date-missing",
        ),
        pytest.param(
            "provinces.toml",
            _edited("provinces.toml", 'code = "12"', 'code = "11"'),
            ["provinces.toml", "[[province]] #2", "code", "11"],
            id="duplicate-province-code",
        ),
        pytest.param(
            "provinces.toml",
            _edited("provinces.toml", 'aliases = ["天津市"]', 'aliases = ["北京市"]'),
            ["provinces.toml", "[[province]] #2", "name", "北京市"],
            id="province-name-used-twice",
        ),
        pytest.param(
            "provinces.toml",
            _edited("provinces.toml", 'code = "12"', 'code = "120"'),
            ["provinces.toml", "[[province]] #2", "code"],
            id="province-code-three-digits",
        ),
        pytest.param(
            "provinces.toml",
            _edited("provinces.toml", 'code = "12"', "code = 12"),
            ["provinces.toml", "[[province]] #2", "'code'", "str"],
            id="province-code-not-text",
        ),
        pytest.param(
            "audit.toml",
            _edited("audit.toml", "every_records = 100", "every_records = 0"),
            ["audit.toml [checkpoints]", "every_records"],
            id="checkpoint-every-0-records",
        ),
        pytest.param(
            "audit.toml",
            _edited("audit.toml", "every_minutes = 15", 'every_minutes = "15"'),
            ["audit.toml [checkpoints]", "'every_minutes'", "int"],
            id="checkpoint-minutes-not-a-number",
        ),
        pytest.param(
            "audit.toml",
            _edited("audit.toml", "every_minutes = 15", "every_minutes = 20000"),
            ["audit.toml [checkpoints]", "every_minutes"],
            id="checkpoint-minutes-beyond-a-week",
        ),
        pytest.param("audit.toml", "", ["audit.toml", "checkpoints"], id="checkpoints-missing"),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", 'formal = ["signed_form"]', 'formal = ["stamp"]'),
            ["workflow.toml [acceptance]", "required_attachments.formal", "stamp", "signed_form"],
            id="acceptance-unknown-attachment-kind",
        ),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", "test = [],", "trial = [],"),
            ["workflow.toml [acceptance]", "trial"],
            id="acceptance-unknown-access-type",
        ),
        pytest.param(
            "workflow.toml",
            _edited(
                "workflow.toml", "confirm_uscc_name_conflict = true", 'confirm_uscc_name_conflict = "yes"'
            ),
            ["workflow.toml [acceptance]", "confirm_uscc_name_conflict"],
            id="acceptance-confirmation-not-a-switch",
        ),
        pytest.param(
            "workflow.toml",
            _edited("workflow.toml", "confirm_uscc_name_conflict = true", "confirm_uscc = true"),
            ["workflow.toml [acceptance]", "confirm_uscc"],
            id="acceptance-unknown-key",
        ),
    ],
)
def test_malformed_policy_names_file_and_key(
    tmp_path: Path, name: str, text: str, must_name: list[str]
) -> None:
    _write(tmp_path, name, text)
    with pytest.raises(ConfigurationError) as exc:
        load_policies(tmp_path)
    for part in must_name:
        assert part in exc.value.message


@pytest.mark.parametrize("name", ["workflow.toml", "form.toml", "provinces.toml"])
def test_toml_syntax_error_names_the_file(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, _packaged(name) + "\nbroken = [1, 2\n")
    with pytest.raises(ConfigurationError) as exc:
        load_policies(tmp_path)
    assert str(path) in exc.value.message


def test_configuration_error_is_the_one_error_type(tmp_path: Path) -> None:
    _write(tmp_path, "form.toml", "validity_months = 12\nearliest_application_date = 2020-01-01\n")
    with pytest.raises(ConfigurationError) as exc:
        load_policies(tmp_path)
    assert exc.value.code == "configuration"


def test_earliest_application_date_must_be_a_plain_date(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "form.toml",
        _edited(
            "form.toml",
            "earliest_application_date = 2020-01-01",
            "earliest_application_date = 2020-01-01T00:00:00",
        ),
    )
    with pytest.raises(ConfigurationError) as exc:
        load_policies(tmp_path)
    assert "earliest_application_date" in exc.value.message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("provinces.toml", "province = [1]\n", id="province-entry-int"),
        pytest.param(
            "workflow.toml",
            _packaged("workflow.toml")
            .split("[[separation]]")[0]
            .replace("[actions]", "separation = [1]\n[actions]"),
            id="separation-entry-int",
        ),
    ],
)
def test_non_table_entry_is_a_configuration_error(tmp_path: Path, name: str, text: str) -> None:
    _write(tmp_path, name, text)
    with pytest.raises(ConfigurationError):
        load_policies(tmp_path)


def test_province_code_must_be_ascii_digits(tmp_path: Path) -> None:
    _write(tmp_path, "provinces.toml", _edited("provinces.toml", 'code = "12"', 'code = "１２"'))
    with pytest.raises(ConfigurationError) as exc:
        load_policies(tmp_path)
    assert "code" in exc.value.message


# --- per-file override ---


def test_missing_file_falls_back_to_packaged(tmp_path: Path) -> None:
    _write(tmp_path, "form.toml", "validity_months = [6, 12]\nearliest_application_date = 2020-06-01\n")
    loaded = load_policies(tmp_path)
    assert loaded.form.validity_months == (6, 12)
    assert loaded.form.earliest_application_date == date(2020, 6, 1)
    assert loaded.workflow == POLICIES.workflow
    assert loaded.provinces == POLICIES.provinces


def test_empty_override_directory_gives_packaged_policies(tmp_path: Path) -> None:
    assert load_policies(tmp_path) == POLICIES


def test_override_replaces_whole_file(tmp_path: Path) -> None:
    _write(tmp_path, "provinces.toml", '[[province]]\ncode = "11"\nname = "北京"\n')
    cutover = _packaged("cutover.toml")
    start = cutover.index("fast_track_provinces = [")
    end = cutover.index("]", start) + 1
    _write(tmp_path, "cutover.toml", cutover[:start] + 'fast_track_provinces = ["北京"]' + cutover[end:])
    table = load_policies(tmp_path).provinces
    assert list(table.by_code) == ["11"]
    assert table.lookup("北京市") is None
    assert table.lookup("上海") is None


def test_validity_months_sorted_and_deduplicated(tmp_path: Path) -> None:
    _write(tmp_path, "form.toml", "validity_months = [24, 12, 24]\nearliest_application_date = 2020-01-01\n")
    assert load_policies(tmp_path).form.validity_months == (12, 24)


# --- the province table ---


@pytest.mark.parametrize(
    ("name", "code", "canonical"),
    [
        pytest.param("新疆维吾尔自治区", "65", "新疆", id="alias-xinjiang"),
        pytest.param("新疆", "65", "新疆", id="canonical-xinjiang"),
        pytest.param("  西藏自治区\t", "54", "西藏", id="alias-with-whitespace"),
        pytest.param(" 上海 ", "31", "上海", id="canonical-with-spaces"),
        pytest.param("兵团", "66", "新疆生产建设兵团", id="bingtuan"),
        pytest.param("内蒙古自治区", "15", "内蒙古", id="neimenggu"),
        pytest.param("黑龙江省", "23", "黑龙江", id="heilongjiang"),
    ],
)
def test_province_lookup(name: str, code: str, canonical: str) -> None:
    province = POLICIES.provinces.lookup(name)
    assert province is not None
    assert (province.code, province.name) == (code, canonical)


@pytest.mark.parametrize("name", ["", "   ", "Beijing", "新疆自治区", "北京市市"])
def test_province_lookup_unknown(name: str) -> None:
    assert POLICIES.provinces.lookup(name) is None


def test_province_by_code() -> None:
    assert POLICIES.provinces.by_code["54"].name == "西藏"
    assert POLICIES.provinces.by_code["11"].aliases == ("北京市",)
    assert "99" not in POLICIES.provinces.by_code


@pytest.mark.parametrize("name", ["北京", "上海", "天津", "浙江", "河南", "青海", "新疆", "西藏", "黑龙江"])
def test_regions_named_in_the_notice_are_in_the_table(name: str) -> None:
    province = POLICIES.provinces.lookup(name)
    assert province is not None
    assert POLICIES.provinces.by_code[province.code] is province


def test_acceptance_switches_per_access_type() -> None:
    from pki.enums import AccessType

    acceptance = WORKFLOW.acceptance
    assert acceptance.attachments_for(AccessType.FORMAL) == ("signed_form",)
    assert acceptance.attachments_for(AccessType.TEST) == ()
    assert acceptance.confirm_uscc_name_conflict is True


def test_acceptance_switches_are_optional(tmp_path: Path) -> None:
    """A policy directory from before the switches: nothing extra is required."""
    from pki.enums import AccessType

    text = _packaged("workflow.toml")
    _write(tmp_path, "workflow.toml", text[: text.index("[acceptance]")])
    acceptance = load_policies(tmp_path).workflow.acceptance
    assert acceptance.attachments_for(AccessType.FORMAL) == () and not acceptance.confirm_uscc_name_conflict


def test_provinces_keep_the_standard_order() -> None:
    """GB/T 2260 order, as provinces.toml lists them: never code-point order (上海, 云南, 内蒙古, 北京 …)."""
    names = POLICIES.provinces.names
    assert names[:5] == ("北京", "天津", "河北", "山西", "内蒙古")
    assert names[-3:] == ("台湾", "香港", "澳门")
    assert list(names) != sorted(names)
    ranked = sorted(
        ["上海", "云南", "内蒙古", "北京市", "不存在的地方", "新疆生产建设兵团"], key=POLICIES.provinces.order
    )
    assert ranked == ["北京市", "内蒙古", "上海", "云南", "新疆生产建设兵团", "不存在的地方"]


def test_renewal_window_carry_over_and_hold_are_policy(tmp_path: Path) -> None:
    from policies.ca import load_ca

    ca = POLICIES.ca
    assert (ca.renewal_window_days, ca.renewal_after_expiry_days, ca.renewal_carry_over) == (90, 365, True)
    assert (ca.hold_max_days, ca.hold_expiry_reason) == (90, "cessationOfOperation")
    for old, new, complaint in (
        ("after_expiry_days = 365", "after_expiry_days = -1", "after_expiry_days"),
        ("carry_over = true", 'carry_over = "yes"', "carry_over"),
        ('expiry_reason = "cessationOfOperation"', 'expiry_reason = "certificateHold"', "expiry_reason"),
        ("max_days = 90", "max_days = 0", "max_days"),
    ):
        _write(tmp_path, "ca.toml", _edited("ca.toml", old, new))
        with pytest.raises(ConfigurationError, match=complaint):
            load_ca(tmp_path)
