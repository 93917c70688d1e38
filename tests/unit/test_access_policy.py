"""access.toml: login throttling, session lengths and attachment limits, validated at load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pki.errors import ConfigurationError
from policies import load_policies
from policies.access import load_access
from policies.workflow import load_workflow


def test_packaged_access_policy() -> None:
    access = load_policies().access
    assert access.login_window == timedelta(minutes=15)
    assert (access.max_failures_per_user, access.max_failures_per_address) == (5, 20)
    assert access.session_idle < access.session_absolute
    assert set(access.attachment_kinds) == {"signed_form", "credential"}


def test_attachments_are_for_acceptance_and_review() -> None:
    wf = load_workflow(Path(__file__).resolve().parents[2] / "policies")
    assert wf.operation_allows({"acceptor"}, "read_attachments") and wf.operation_allows(
        {"reviewer"}, "read_attachments"
    )
    assert not wf.operation_allows({"distributor"}, "read_attachments")
    assert wf.operation_allows({"entry"}, "attach") and not wf.operation_allows({"reviewer"}, "attach")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[login]\n[session]\n[attachments]\n", "missing key"),
        (
            "[login]\nwindow_minutes=0\nmax_failures_per_user=1\nmax_failures_per_address=1\n"
            "[session]\nidle_minutes=1\nabsolute_hours=1\n[desk]\nidle_minutes=1\nabsolute_hours=1\n"
            "[attachments]\nmax_bytes=1\nkinds={a='A'}\n",
            "positive",
        ),
        (
            "[login]\nwindow_minutes=1\nmax_failures_per_user=1\nmax_failures_per_address=1\n"
            "[session]\nidle_minutes=600\nabsolute_hours=1\n[desk]\nidle_minutes=1\nabsolute_hours=1\n"
            "[attachments]\nmax_bytes=1\nkinds={a='A'}\n",
            r"\[session\]: absolute_hours",
        ),
        (
            "[login]\nwindow_minutes=1\nmax_failures_per_user=1\nmax_failures_per_address=1\n"
            "[session]\nidle_minutes=1\nabsolute_hours=1\n[desk]\nidle_minutes=600\nabsolute_hours=1\n"
            "[attachments]\nmax_bytes=1\nkinds={a='A'}\n",
            r"\[desk\]: absolute_hours",
        ),
        (
            "[login]\nwindow_minutes=1\nmax_failures_per_user=1\nmax_failures_per_address=1\n"
            "[session]\nidle_minutes=1\nabsolute_hours=1\n[desk]\nidle_minutes=1\nabsolute_hours=1\n"
            "[attachments]\nmax_bytes=1\nkinds={}\n",
            "kinds",
        ),
    ],
)
def test_malformed_access_policy_is_refused(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "access.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=words):
        load_access(tmp_path)
