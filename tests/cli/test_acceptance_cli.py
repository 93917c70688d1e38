"""The acceptance rules from the command line, exactly as the UI and the API meet them (one desk operation):
`request attach` keeps the stamped scan a formal request needs, and `request accept --confirm-uscc` confirms
a credit code on record under another unit name."""

from __future__ import annotations

from pathlib import Path

from tests.cli.runner import Cli
from tests.cli.test_ca_cli import USBKEY, assert_refused, enter
from tests.support.data import SCAN_PDF, make_uscc

CODE = make_uscc("110101", "91000001")


def _accept(cli: Cli, rid: int, *more: str):  # type: ignore[no-untyped-def]
    return cli(
        "request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, *more, "--as", "acceptor"
    )


def test_a_formal_request_is_accepted_once_its_stamped_scan_is_kept(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path, access_type="formal")
    assert_refused(
        _accept(staffed, rid), "attachments: upload the signed_form scan before accepting a formal request"
    )
    scan = tmp_path / "盖章申请表.pdf"
    scan.write_bytes(SCAN_PDF)
    kept = staffed.json(
        "request", "attach", str(rid), "--kind", "signed_form", "--file", str(scan), "--as", "clerk", "--json"
    )
    assert (
        kept["kind"] == "signed_form" and kept["filename"] == "盖章申请表.pdf" and kept["request_id"] == rid
    )
    said = staffed.ok(
        "request", "attach", str(rid), "--kind", "credential", "--file", str(scan), "--as", "clerk"
    ).out
    assert said.startswith(f"request {rid}: attachment ") and "(credential) kept" in said
    assert _accept(staffed, rid).code == 0
    not_a_scan = tmp_path / "notes.txt"
    not_a_scan.write_text("plain text", encoding="utf-8")
    refused = staffed(
        "request", "attach", str(rid), "--kind", "signed_form", "--file", str(not_a_scan), "--as", "clerk"
    )
    assert_refused(refused, "file: only PDF, JPEG or PNG files")


def test_a_credit_code_under_another_name_needs_confirm_uscc(staffed: Cli, tmp_path: Path) -> None:
    first = enter(staffed, tmp_path, credential_number=CODE, unit_name="北京甲公司")
    rid = enter(staffed, tmp_path, credential_number=CODE, unit_name="北京乙公司", target_system="另一个系统")
    refused = _accept(staffed, rid)
    assert_refused(
        refused,
        f"confirm_uscc: credit code {CODE} is on record under another unit name",
        f"request {first}: 北京甲公司",
    )
    assert staffed.json("request", "show", str(rid), "--json")["state"] == "entered"
    assert _accept(staffed, rid, "--confirm-uscc").code == 0
    history = staffed.json("request", "show", str(rid), "--json")["history"]
    assert history[-1]["details"]["uscc_confirmed"] == [f"request:{first}"]
    assert "--confirm-uscc" in staffed.ok("request", "accept", "--help").out
