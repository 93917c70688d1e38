"""USB keys: `pkictl issue` onto a token (called from ca_commands.issue), `pkictl token list|mark`,
`pkictl distribute`. The rules live in the services; this module opens the PKCS#11 module and the token, reads
the PIN (PKI_TOKEN_PIN or a hidden prompt, never an argument) and prints."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from pki.cli.app import (
    as_option,
    cli,
    desk,
    json_option,
    local_time,
    login,
    print_json,
    reader_option,
    service,
)

if TYPE_CHECKING:
    from pki.desk.local import LocalDesk
    from pki.desk.remote import RemoteDesk
    from pki.services import Actor, Service
    from pki.services.token_issuance import LockedKey, TokenIssued
    from tokens.session import Module, TokenInfo


def token_pin() -> str:
    pin = os.environ.get("PKI_TOKEN_PIN")
    if pin is not None:
        return pin
    if not sys.stdin.isatty():
        raise click.UsageError("no USB key PIN: set PKI_TOKEN_PIN or run in a terminal to be prompted")
    return str(click.prompt("USB key user PIN", hide_input=True))


def _module_for(
    svc: Service, request_id: int, module_path: str | None, key_type: str | None
) -> tuple[str, str]:
    """The module path and key type: given, or from tokens.toml by the request's USBKEY 品牌及型号."""
    if module_path is not None:
        return module_path, svc.ctx.policies.tokens.key_type_for(
            svc.token_issuance.usbkey_model(request_id), key_type
        )
    model = svc.ctx.policies.tokens.require_model(svc.token_issuance.usbkey_model(request_id))
    return model.module, model.key_type(key_type)


def _load(path: str) -> Module:
    from pki.errors import TokenError
    from tokens.session import Module

    if not Path(path).is_file():
        raise TokenError(f"PKCS#11 module {path} not found: install the USB key's driver or give --module")
    return Module(path)


def _present(module: Module) -> list[TokenInfo]:
    """The readable tokens present; a slot whose token cannot be read is a warning, not the end."""
    scan = module.scan()
    for fault in scan.faults:
        click.echo(f"pkictl: warning: {module.path}: {fault.message}", err=True)
    return scan.tokens


def _echo_issued(done: dict[str, Any], as_json: bool) -> None:
    """A delivery (services/token_issuance.TokenIssued) as a document: the same from either desk."""
    if isinstance(done.get("not_valid_after"), datetime):
        done = done | {"not_valid_after": done["not_valid_after"].isoformat()}
    if as_json:
        print_json(done)
        return
    verb = "written (resumed)" if done["resumed"] else "issued"
    click.echo(
        f"certificate {done['serial']} {verb} onto token {done['token_serial']} as {done['label']!r} "
        f"({done['key_type']}, key id {done['key_id']}), until {local_time(done['not_valid_after'])}; "
        f"request {done['request_id']} is issued: hand it over with 'pkictl distribute {done['request_id']}'"
    )


def _unknown_model(name: str) -> str:
    """The center's tokens.toml knows no module for the request's model: the same refusal as on its host."""
    from pki.errors import FieldError, ValidationError
    from policies import load_policies

    load_policies().tokens.require_model(name)  # the same words, when this desk's policies agree
    raise ValidationError(
        [
            FieldError(
                "usbkey",
                f"USB key model {name!r} is not in the center's tokens.toml; give --module",
                "USBKEY 品牌及型号未登记，请指定驱动模块",
            )
        ]
    )


def issue_onto_token(
    request_id: int,
    as_user: str,
    module_path: str | None,
    token_label: str | None,
    token_serial: str | None,
    key_type: str | None,
    resume: bool,
    as_json: bool,
) -> None:
    """One request onto one USB key, through whichever desk this is: the center's service in this process,
    or the center's API (pki/desk/usbkey.py, the handshake) with the key pair made on the token here."""
    from pki.desk import usbkey
    from pki.desk.local import LocalDesk
    from pki.services.token_issuance import LockedKey
    from tokens.usbkey import open_usb_key

    d = desk(as_user)
    if not isinstance(d, LocalDesk):
        # Resuming, the certificate waiting on the center says which module; else the issuance's start does.
        plan = d.call("token.pending" if resume else "token.begin", request_id=request_id)
        path = module_path or plan["module"] or _unknown_model(plan["usbkey_model"])
        chosen = key_type or plan["key_type"] or "ec-p256"
    else:
        path, chosen = _module_for(d.service, request_id, module_path, key_type)
    module = _load(path)
    info = _find(module, token_label, token_serial)
    with _locked_pin_named(lambda serial: LockedKey(**d.call("token.locked", token_serial=serial)), info):
        warning = module.user_pin_status(info)  # a locked key is refused before its PIN is asked for
        if warning:
            click.echo(f"pkictl: warning: token {info.serial}: {warning}", err=True)
        pin = token_pin()

        def open_device() -> Any:
            return open_usb_key(module, info, pin)

        if not isinstance(d, LocalDesk):
            document = (
                usbkey.resume(d, request_id, open_device, plan)
                if resume
                else usbkey.issue(d, request_id, open_device, info.serial, chosen)
            )
            _echo_issued(document, as_json)
            return
        svc, actor = d.service, d.actor()
        if resume:
            with open_device() as device:
                done = svc.token_issuance.resume(request_id, device, actor=actor)
        else:
            done = issue_prechecked(svc, module, info, pin, request_id, actor, chosen)
    _echo_issued(asdict(done), as_json)


def renew_onto_token(
    serial: str,
    as_user: str,
    module_path: str | None,
    token_label: str | None,
    token_serial: str | None,
    months: int | None,
    resume: bool,
    as_json: bool,
) -> None:
    """`pkictl renew SERIAL --token-…`: the renewal written onto the key holding the old key pair, through
    whichever desk this is (pki/desk/usbkey.py; the center decides every step, services/token_renewal.py)."""
    from pki.desk import usbkey
    from pki.services.token_issuance import LockedKey
    from tokens.usbkey import open_usb_key

    d = desk(as_user)
    plan = (
        d.call("renew.token.pending", serial=serial)
        if resume
        else d.call("renew.token.begin", serial=serial, months=months)
    )
    path = module_path or plan["module"] or _unknown_model(plan["usbkey_model"])
    module = _load(path)
    info = _find(module, token_label, token_serial)
    usbkey.refuse_other_token(plan, info.serial)
    with _locked_pin_named(lambda s: LockedKey(**d.call("token.locked", token_serial=s)), info):
        warning = module.user_pin_status(info)  # a locked key is refused before its PIN is asked for
        if warning:
            click.echo(f"pkictl: warning: token {info.serial}: {warning}", err=True)
        pin = token_pin()

        def open_device() -> Any:
            return open_usb_key(module, info, pin)

        done = (
            usbkey.resume_renewal(d, plan, open_device)
            if resume
            else usbkey.renew(d, plan, open_device, months=months)
        )
    if as_json:
        print_json(done)
        return
    verb = "written (resumed)" if done["resumed"] else "issued and written"
    click.echo(
        f"certificate {done['serial']}, the renewal of {done['renewed_from']}, {verb} onto token "
        f"{done['token_serial']} beside the same key pair as {done['label']!r} (key id {done['key_id']}), "
        f"until {local_time(done['not_valid_after'])}; the old certificate object was removed from the key. "
        f"Hand it over with 'pkictl distribute {done['request_id']}'"
    )


@contextmanager
def _locked_pin_named(lookup: Callable[[str], LockedKey], info: TokenInfo) -> Iterator[None]:
    """A key found with its holder's PIN locked, before the log-in or by it: refused with the deal that
    fixes it, which names the certificate of ours the key holds (services/token_issuance.LockedKey)."""
    from pki.errors import PkiError, TokenError

    try:
        yield
    except TokenError as e:
        if e.ckr != "CKR_PIN_LOCKED":
            raise
        try:
            found = lookup(info.serial)
        except PkiError as failed:  # say what the key said, and why no deal is named
            e.add_note(f"the certificate on token {info.serial} could not be looked up: {failed.message}")
            raise e from None
        raise found.refusal() from None


def issue_prechecked(
    svc: Service, module: Module, info: TokenInfo, pin: str, request_id: int, actor: Actor, key_type: str
) -> TokenIssued:
    """The service's read-only checks run while we log in to the token (both before anything is generated)."""
    from tokens.usbkey import open_usb_key

    checked = _checker().submit(
        svc.token_issuance.precheck, request_id, actor=actor, token_serial=info.serial
    )
    try:
        with open_usb_key(module, info, pin) as device:
            return svc.token_issuance.issue(
                request_id, device, actor=actor, key_type=key_type, prechecked=checked.result()
            )
    finally:
        checked.cancel()
        wait([checked])  # a log-in that failed does not leave the checks running on


@functools.cache
def _checker() -> ThreadPoolExecutor:
    """The thread the pre-checks run in, kept for the process (starting one per request costs more than the
    checks hidden behind the log-in)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkictl-precheck")


class _StopRequested:
    """Ctrl-C during --all-approved: noted, and honoured between requests (never inside one)."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequested:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop:  # a second Ctrl-C: the operator insists
            raise KeyboardInterrupt
        self.stop = True
        click.echo("\nstopping after the current request (Ctrl-C again to abort now)", err=True)

    def __exit__(self, *_: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def issue_all_approved(as_user: str, module_path: str | None, key_type: str | None, as_json: bool) -> None:
    """The approved queue onto the blank USB keys present, one request per token, in slot order."""
    from pki.errors import PkiError

    svc = service()
    actor = login(svc, as_user)
    policy = svc.ctx.policies.tokens
    queue = svc.token_issuance.approved_queue(actor=actor)
    if module_path is None and not queue:
        click.echo("no approved request waits for a USB key")
        return
    if module_path is None:
        paths = {m.module for q in queue if (m := policy.model(q.usbkey_model)) is not None}
        if len(paths) != 1:
            raise click.UsageError(
                "the queued requests' USB key models need different modules: give --module"
            )
        module_path = paths.pop()
    module = _load(module_path)
    present = {t.serial: t for t in _present(module)}
    serials = svc.token_issuance.fillable(list(present))
    pin = token_pin() if queue and serials else ""
    results: list[dict[str, Any]] = []
    pairs = svc.token_issuance.pairs(queue, list(present))  # a key only where its point may issue onto it

    def locked(serial: str) -> LockedKey:
        return svc.token_issuance.locked_key(serial, actor=actor)

    with (
        _StopRequested() as stop,
        click.progressbar(pairs, label="issuing onto USB keys", file=sys.stderr, show_pos=True) as bar,
    ):
        for q, serial in bar:
            if stop.stop:
                break
            item: dict[str, Any] = {"request": q.id, "token": serial}
            try:
                chosen = policy.key_type_for(q.usbkey_model, key_type)
                with _locked_pin_named(locked, present[serial]):
                    done = issue_prechecked(svc, module, present[serial], pin, q.id, actor, chosen)
                item |= {"status": "issued", "serial": done.serial, "label": done.label}
            except PkiError as e:
                item |= {"status": "failed", "error": e.message}
            results.append(item)
    issued = sum(1 for r in results if r["status"] == "issued")
    summary = {
        "issued": issued,
        "failed": len(results) - issued,
        "waiting": len(queue) - issued,
        "tokens_present": len(present),
        "tokens_blank": len(serials),
        "interrupted": stop.stop,
        "results": results,
    }
    if as_json:
        print_json(summary)
    else:
        for r in results:
            tail = f"certificate {r['serial']}" if r["status"] == "issued" else r["error"]
            click.echo(f"request {r['request']} -> token {r['token']}: {r['status']}: {tail}")
        click.echo(
            f"{issued} issued, {summary['failed']} failed, {summary['waiting']} still approved; "
            f"{len(serials)} of {len(present)} tokens present were blank"
            + ("; stopped on Ctrl-C" if stop.stop else "")
        )
    if summary["failed"] or stop.stop:
        raise SystemExit(130 if stop.stop else 1)


def demo_token(home: Path, approved_ids: list[int], distributor: str) -> None:
    """`pkictl demo`'s USB key: a SoftHSM2 token under the home, its PINs printed once, and what to try."""
    from pki.errors import PkiError
    from tokens.softhsm import PIN_FILE, create_demo_token

    try:
        t = create_demo_token(home)
    except (PkiError, OSError, subprocess.SubprocessError) as e:
        click.echo(f"pkictl: warning: no demo USB key ({e})", err=True)
        return
    click.echo(
        f"Demo USB key (SoftHSM2) {t.label!r}: user PIN {t.pin}, SO PIN {t.so_pin} "
        f"(shown only now; kept in {home}/{PIN_FILE} for the demo)"
    )
    if approved_ids:
        click.echo("Issue the approved demo request onto it:")
        click.echo(
            f"  SOFTHSM2_CONF={t.conf} PKI_TOKEN_PIN=$(cat {home}/{PIN_FILE}) "
            f"PKI_CA_PASSPHRASE=$(cat {home}/DEMO-CA-PASSPHRASE) \\"
        )
        click.echo(f"    pkictl issue {approved_ids[0]} --as {distributor} --token-label {t.label}")


# -- inventory ---------------------------------------------------------------------------------------------


@cli.group()
def token() -> None:
    """USB keys: the inventory next to the tokens a PKCS#11 module sees."""


@token.command("list")
@click.option(
    "--module",
    "modules",
    multiple=True,
    metavar="PATH",
    help="PKCS#11 module to look through (repeatable; default: every module in tokens.toml found on disk).",
)
@reader_option
@json_option
def token_list(modules: tuple[str, ...], as_user: str | None, as_json: bool) -> None:
    """List recorded tokens by acceptance point and state (holder, certificates), the tokens present now,
    and the stock per point, model and state."""
    from pki.errors import TokenError

    d = desk(as_user)
    paths = module_paths(d, modules)
    seen: list[dict[str, str]] = []
    for path in paths:
        try:
            seen += [
                {"serial": t.serial, "label": t.label, "model": t.model, "module": path}
                for t in _present(_load(path))
            ]
        except TokenError as e:
            click.echo(f"pkictl: warning: {e.message}", err=True)
    rows = d.call("token.list", seen=seen)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no tokens recorded or present")
    for r in sorted(rows, key=lambda r: (r["point"] or "", r["state"], r["serial"])):
        where = "present" if r["present"] else "absent"
        holder = f"{r['holder_credential']} {r['holder_unit']}".strip() or "-"
        point = (r["point"] or "-") + (f" -> {r['transfer_to']}" if r["transfer_to"] else "")
        click.echo(
            f"{point:<16} {r['serial']:<20} {r['state']:<10} {where:<7} certs {r['certificates']:<3} "
            f"{r['label'] or '-':<20} {r['model'] or '-':<20} {holder}"
        )
    counts = d.call("token.stock")
    if counts:
        click.echo("stock by point (model: state count):")
    for c in counts:
        click.echo(f"  {c['point']:<16} {c['model']:<24} {c['state']:<10} {c['count']}")


@token.command("mark")
@click.argument("serial")
@click.option("--lost", "mark", flag_value="lost", help="Lost: per tokens.toml, its certificates revoked.")
@click.option("--destroyed", "mark", flag_value="destroyed", help="Destroyed (terminal).")
@click.option("--returned", "mark", flag_value="returned", help="Returned to the acceptance point.")
@click.option("--suspended", "mark", flag_value="suspended", help="Held back: takes no new certificate.")
@click.option("--reinstated", "mark", flag_value="reinstated", help="Back in service after a suspension.")
@click.option("--comment", default="", help="Why (kept in the audit trail and the revocation).")
@as_option
@json_option
def token_mark(serial: str, mark: str | None, comment: str, as_user: str, as_json: bool) -> None:
    """Mark a token lost, destroyed, returned, suspended or reinstated, applying tokens.toml [inventory]."""
    if mark is None:
        raise click.UsageError("give one of --lost, --destroyed, --returned, --suspended, --reinstated")
    done = desk(as_user).call("token.mark", serial=serial, mark=mark, comment=comment)
    if as_json:
        print_json(done)
        return
    revoked = f"; revoked {', '.join(done['revoked'])}" if done["revoked"] else ""
    click.echo(f"token {done['serial']} marked {done['state']}{revoked}")


@token.command("clean")
@click.option(
    "--module", "module_path", metavar="PATH", help="PKCS#11 module (default: those in tokens.toml)."
)
@click.option("--token-label", metavar="LABEL", help="The USB key, by its label.")
@click.option("--token-serial", metavar="SERIAL", help="The USB key, by its serial number.")
@click.option("--remove", is_flag=True, help="Remove them (without it, only list them).")
@click.option("--as", "as_user", metavar="USER", help="Who removes them (needed with --remove).")
@json_option
def token_clean(
    module_path: str | None,
    token_label: str | None,
    token_serial: str | None,
    remove: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """List (or --remove) what an interrupted issuance left on a USB key: pkictl's key pairs that no
    certificate record places on it (one pkictl process at a time opens a key, so none is mid-issuance)."""
    from pki.desk import usbkey
    from tokens.usbkey import open_usb_key

    if (token_label is None) == (token_serial is None):
        raise click.UsageError("give one of --token-label, --token-serial")
    if remove and as_user is None:
        raise click.UsageError("--remove needs --as USER")
    d = desk(as_user if remove else None)
    module, info = _find_token(
        module_paths(d, (module_path,) if module_path else ()), token_label, token_serial
    )
    with open_usb_key(module, info, token_pin()) as device:
        found = usbkey.clean(d, device, remove=remove)
    if as_json:
        print_json({"token": info.serial, "removed": remove, "leftovers": found})
        return
    if not found:
        click.echo(f"token {info.serial}: nothing left by an interrupted issuance")
    for x in found:
        request = f"request {x['request_id']}" if x["request_id"] is not None else "no request"
        click.echo(
            f"{'removed' if remove else 'left over'}: {x['label']} (key id {x['key_id']}; "
            f"{', '.join(x['classes'])}; {request})"
        )
    if found and not remove:
        click.echo(f"remove them with: pkictl token clean --token-serial {info.serial} --remove --as USER")


def module_paths(d: LocalDesk | RemoteDesk, given: tuple[str, ...]) -> tuple[str, ...]:
    """The PKCS#11 modules to look through: those given, or every module of tokens.toml found on this
    machine (the home's policies on the center's host, the packaged ones on a desk)."""
    from pki.desk.local import LocalDesk
    from policies import load_policies

    if given:
        return given
    policy = d.service.ctx.policies if isinstance(d, LocalDesk) else load_policies()
    return tuple(p for p in policy.tokens.modules() if Path(p).is_file())


def _find(module: Module, label: str | None, serial: str | None) -> TokenInfo:
    return module.find(label=label) if label is not None else module.find(serial=serial)


def _find_token(paths: tuple[str, ...], label: str | None, serial: str | None) -> tuple[Module, TokenInfo]:
    """The first module in ``paths`` that sees the token; the refusal names every module searched."""
    from pki.errors import TokenError

    last: TokenError | None = None
    for path in paths:
        module = _load(path)
        try:
            return module, _find(module, label, serial)
        except TokenError as e:
            last = e
    if last is None:
        raise TokenError("no PKCS#11 module found: give --module")
    if len(paths) > 1:
        wanted = f"label {label!r}" if label is not None else f"serial {serial!r}"
        raise TokenError(
            f"no token with {wanted} is present (searched PKCS#11 modules {', '.join(paths)})",
            message_zh=last.message_zh,
            ckr=last.ckr,
        )
    raise last


# -- hand-over -----------------------------------------------------------------------------------------------


@cli.command()
@click.argument("request_id", type=int)
@click.option("--recipient", required=True, metavar="NAME", help="Who received the USB key (领取人).")
@as_option
@json_option
def distribute(request_id: int, recipient: str, as_user: str, as_json: bool) -> None:
    """Record the hand-over of the request's USB key to the unit (分发) and mark it distributed."""
    done = desk(as_user).call("distribute", request_id=request_id, recipient=recipient)
    if as_json:
        print_json(done)
        return
    revoked = done["superseded_revoked"]
    extra = f"; {revoked} revoked as superseded" if revoked else ""
    click.echo(
        f"request {done['request_id']}: certificate {done['serial']} handed over to {done['recipient']}{extra}"
    )
