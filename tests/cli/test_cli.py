from __future__ import annotations

from tests.cli.conftest import Cli


def test_smoke(staffed: Cli) -> None:
    r = staffed("user", "list", "--json")
    assert r.code == 0
    print(r.json())
