"""tokens.toml: USB key models -> PKCS#11 module and key types; the inventory policy; errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pki.enums import RevocationReason, TokenState
from pki.errors import ConfigurationError, ValidationError
from policies import load_policies
from policies._load import PACKAGED

TOKENS = load_policies().tokens


def _edited(old: str, new: str) -> str:
    text = (PACKAGED / "tokens.toml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_models_match_by_name_or_alias_ignoring_case_and_spaces() -> None:
    assert TOKENS.require_model("softhsm2").module == "/usr/lib/softhsm/libsofthsm2.so"
    assert TOKENS.require_model("SoftHSM v2").name == "SoftHSM2"
    assert TOKENS.require_model("飞天诚信ePass3003").key_types == ("rsa-2048",)
    assert TOKENS.model("某品牌 某型号") is None
    with pytest.raises(ValidationError) as e:
        TOKENS.require_model("某品牌 某型号")
    assert e.value.errors[0].field == "usbkey" and "--module" in e.value.errors[0].message


def test_key_type_defaults_to_the_model_and_refuses_what_it_cannot_make() -> None:
    softhsm = TOKENS.require_model("SoftHSM2")
    assert softhsm.key_type(None) == "ec-p256" and softhsm.key_type("rsa-2048") == "rsa-2048"
    with pytest.raises(ValidationError, match="supports rsa-2048"):
        TOKENS.require_model("ePass3003").key_type("ec-p256")


def test_inventory_policy() -> None:
    lost = TOKENS.marks["lost"]
    assert lost.state is TokenState.LOST and lost.revoke is RevocationReason.KEY_COMPROMISE
    assert TokenState.DESTROYED not in lost.allowed_from
    assert TOKENS.marks["returned"].revoke is RevocationReason.CESSATION_OF_OPERATION
    assert TOKENS.modules()[0] == "/usr/lib/softhsm/libsofthsm2.so"
    suspended, reinstated = TOKENS.marks["suspended"], TOKENS.marks["reinstated"]
    assert (suspended.state, suspended.revoke, suspended.allowed_from) == (
        TokenState.SUSPENDED,
        None,
        frozenset({TokenState.ISSUED}),
    )
    assert reinstated.state is TokenState.ISSUED and reinstated.allowed_from == {TokenState.SUSPENDED}


def test_suspending_is_optional_in_tokens_toml(tmp_path: Path) -> None:
    text = (PACKAGED / "tokens.toml").read_text(encoding="utf-8")
    for directory in PACKAGED.glob("*.toml"):
        (tmp_path / directory.name).write_text(directory.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "tokens.toml").write_text(text[: text.index("# Held back")], encoding="utf-8")
    assert sorted(load_policies(tmp_path).tokens.marks) == ["destroyed", "lost", "returned"]


@pytest.mark.parametrize(
    ("text", "must_name"),
    [
        pytest.param(
            _edited('module = "/usr/lib/softhsm/libsofthsm2.so"', 'module = "libsofthsm2.so"'),
            ["[[model]] #1", "absolute"],
            id="relative-module",
        ),
        pytest.param(
            _edited(
                'key_types = ["ec-p256", "rsa-2048"]\ndefault_key_type = "ec-p256"\nnote = "software',
                'key_types = ["ec-p256", "sm2"]\ndefault_key_type = "ec-p256"\nnote = "software',
            ),
            ["[[model]] #1", "key_types"],
            id="unknown-key-type",
        ),
        pytest.param(
            _edited(
                'default_key_type = "rsa-2048"\nnote = "driven through OpenSC"\n\n[[model]]\nname = "飞天诚信 ePass2003"',
                'default_key_type = "ec-p256"\nnote = "driven through OpenSC"\n\n[[model]]\nname = "飞天诚信 ePass2003"',
            ),
            ["[[model]] #2", "default_key_type"],
            id="default-not-supported",
        ),
        pytest.param(
            _edited('aliases = ["ePass2003", "Feitian ePass2003"]', 'aliases = ["ePass3003"]'),
            ["[[model]] #3", "ePass3003", "two models"],
            id="duplicate-alias",
        ),
        pytest.param(
            _edited('revoke = "keyCompromise"', 'revoke = "stolen"'),
            ["[inventory.lost]", "stolen"],
            id="unknown-reason",
        ),
        pytest.param(
            _edited('state = "lost"', 'state = "misplaced"'),
            ["[inventory.lost]", "misplaced"],
            id="unknown-state",
        ),
        pytest.param(
            _edited(
                'state = "suspended"\nfrom = ["issued"]', 'state = "suspended"\nfrom = ["issued", "returned"]'
            ),
            ["[inventory.reinstated]", "suspended"],
            id="reinstated-not-the-inverse",
        ),
        pytest.param(
            _edited(
                'state = "issued"\nfrom = ["suspended"]\nrevoke = ""',
                'state = "issued"\nfrom = ["suspended"]\nrevoke = "superseded"',
            ),
            ["[inventory.suspended]", "revoke"],
            id="suspension-revokes",
        ),
        pytest.param(
            _edited('[inventory.reinstated]\nstate = "issued"\nfrom = ["suspended"]\nrevoke = ""', ""),
            ["[inventory]", "go together"],
            id="suspended-alone",
        ),
        pytest.param(
            _edited("[inventory.returned]", "[inventory.recycled]"),
            ["[inventory]", "lost, destroyed, returned"],
            id="unknown-mark",
        ),
    ],
)
def test_malformed_tokens_toml_names_file_and_key(tmp_path: Path, text: str, must_name: list[str]) -> None:
    (tmp_path / "tokens.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as e:
        load_policies(tmp_path)
    assert "tokens.toml" in e.value.message
    for part in must_name:
        assert part in e.value.message, e.value.message
