"""Files pkictl writes for others are whole or absent, even when the process is killed while writing them.

`pkictl crl publish --out DIR` runs as a real subprocess with a sitecustomize shim on PYTHONPATH that
SIGKILLs it in the middle of its Nth file write (half the bytes written and flushed, then the kill), for every
N. Afterwards every file in DIR parses with openssl, each holding either the previous publication or the
new one: the files before the killed write are new, the one being written and those after it are the old
ones. Production code has no fault hook. The other `--out` files (cert export, cutover plan) go through the
same helper (pki.files) and are checked for content here too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.cli.runner import AUDIT_PASSPHRASE, CA_PASSPHRASE, PASSWORD, Cli
from tests.cli.test_ca_cli import OPERATOR
from tests.support import with_shim

ORDER = ["root.crl", "root.crl.pem", "test.crl", "test.crl.pem", "formal.crl", "formal.crl.pem", "crls.pem"]

SHIM = '''
import atexit, os, signal
_target = int(os.environ["KILL_AT_WRITE"])
_count = [0]
_real_fdopen = os.fdopen
_real_open = open


class _Killing:
    """A file opened for writing: the Nth write over all such files writes half its bytes, then dies."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        _count[0] += 1
        if _count[0] == _target:
            self._f.write(data[: len(data) // 2])
            self._f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return self._f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


def _writing(mode):
    return any(c in mode for c in "wax+")


def fdopen(fd, mode="r", *args, **kwargs):
    f = _real_fdopen(fd, mode, *args, **kwargs)
    return _Killing(f) if _writing(mode) else f


def open_(file, mode="r", *args, **kwargs):
    f = _real_open(file, mode, *args, **kwargs)
    inside = isinstance(file, (str, os.PathLike)) and os.fspath(file).startswith(os.environ["KILL_DIR"])
    return _Killing(f) if inside and _writing(mode) else f


os.fdopen = fdopen
import builtins, io
builtins.open = io.open = open_
atexit.register(lambda: open(os.environ["KILL_COUNT"], "w").write(str(_count[0])) if _target == 0 else None)
'''


def publish_killed(cli: Cli, out: Path, shim: Path, at: int, count_file: Path) -> int:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PKI_HOME": str(cli.home),
        "PKI_DATABASE_URL": cli.db_url,
        "PKI_PASSWORD": PASSWORD,
        "PKI_CA_PASSPHRASE": CA_PASSPHRASE,
        "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE,
        "PYTHONPATH": with_shim(shim),
        "KILL_AT_WRITE": str(at),
        "KILL_DIR": str(out),
        "KILL_COUNT": str(count_file),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import pki.cli; pki.cli.main()", "crl", "publish", "--out", str(out)],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()
    return done.returncode


def crl_number_of(path: Path) -> int:
    """The CRL number, read by openssl (which must parse the file); for the bundle, every CRL must parse
    and the lowest number is returned."""
    if path.name == "crls.pem":
        done = subprocess.run(["openssl", "crl2pkcs7", "-in", path], capture_output=True, check=False)
        assert done.returncode == 0, (path, done.stderr)
        pems = path.read_bytes().split(b"-----END X509 CRL-----\n")
        crls = [x509.load_pem_x509_crl(p + b"-----END X509 CRL-----\n") for p in pems if p.strip()]
        assert len(crls) == 3, path
        return min(c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in crls)
    form = ["-inform", "DER"] if path.suffix == ".crl" else []
    done = subprocess.run(
        ["openssl", "crl", *form, "-in", path, "-noout", "-crlnumber"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (path, done.stderr)
    return int(done.stdout.strip().split("=")[1], 16)


def test_crl_publish_killed_at_each_file_write_leaves_only_whole_files(home: Cli, tmp_path: Path) -> None:
    if "postgresql" in home.db_url:
        pytest.skip("file writes do not depend on the database; the SQLite run covers them")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM, encoding="utf-8")
    baseline = tmp_path / "baseline"
    home.ok("crl", "publish", "--out", str(baseline))  # CRL number 1 everywhere
    counted = tmp_path / "count"
    assert publish_killed(home, tmp_path / "counting", shim, 0, counted) == 0  # number 2
    writes = int(counted.read_text())
    assert writes == len(ORDER)  # one write per file: the shim sees every one of them
    for n in range(1, writes + 1):
        out = tmp_path / f"killed-at-{n}"
        shutil.copytree(baseline, out)
        assert publish_killed(home, out, shim, n, counted) == -signal.SIGKILL
        visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        assert visible == sorted(ORDER)  # the torn temporary file is hidden (dot-prefixed), never a target
        for i, name in enumerate(ORDER):
            number = crl_number_of(out / name)
            if i < n - 1:
                assert number == n + 2, (n, name)  # published by this run (numbers 3, 4, … per run)
            else:
                assert number == 1, (n, name)  # the previous file, untouched


def test_cert_export_out_replaces_the_file_whole(home: Cli, tmp_path: Path) -> None:
    from tests.cli.test_ca_cli import issued

    home.add_user(OPERATOR, "ops", "distributor")
    for name, roles in {"clerk": ("entry",), "acceptor": ("acceptor",), "head": ("head",)}.items():
        home.add_user(name, *roles)
    home.add_user("reviewer", "reviewer")
    serial = issued(home, tmp_path, 0)["serial"]
    target = tmp_path / "ee.pem"
    target.write_text("an older, longer file " * 200, encoding="ascii")
    os.chmod(target, 0o644)
    home.ok("cert", "export", serial, "--format", "chain", "--out", str(target))
    chain = x509.load_pem_x509_certificates(target.read_bytes())
    assert [f"{chain[0].serial_number:X}", len(chain)] == [serial, 3]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ee.pem")]  # no temporary left
