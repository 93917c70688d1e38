"""`pkictl token init`, `pkictl token register-so-pin` and `pkictl token unlock`: a USB key's SO PIN made by
pkictl (or given once) and kept, sealed, by the center; never an argument, never printed. The holder's PIN
comes from PKI_NEW_TOKEN_PIN or a hidden prompt."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from pki.cli.app import as_option, desk, json_option, print_json
from pki.cli.token_commands import _find_token, _load, module_paths, token


def _secret(env: str, prompt: str, *, confirm: bool) -> str:
    value = os.environ.get(env)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError(f"no {prompt}: set {env} or run in a terminal to be prompted")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _holder_pin() -> str:
    """The holder's new PIN (PKI_NEW_TOKEN_PIN or a hidden prompt, asked twice), of a length every key takes."""
    from pki.token_pins import USER_PIN_LENGTHS

    user_pin = _secret("PKI_NEW_TOKEN_PIN", "new user PIN for the holder", confirm=True)
    if len(user_pin) not in USER_PIN_LENGTHS:
        lengths = USER_PIN_LENGTHS
        raise click.UsageError(f"the holder's PIN must have {lengths[0]} to {lengths[-1]} characters")
    return user_pin


@token.command("init")
@click.option(
    "--module", "module_path", metavar="PATH", help="PKCS#11 module (default: those in tokens.toml)."
)
@click.option(
    "--token-serial", metavar="S", help="The blank key with this serial (default: the one blank key)."
)
@click.option("--token-label", metavar="L", required=True, help="The label to give the key.")
@click.option(
    "--again",
    is_flag=True,
    help="Initialise again (erase) the initialised key --token-serial, which holds no good certificate of "
    "the center, with the SO PIN the center keeps (a locked holder's PIN on a key back in stock).",
)
@as_option
@json_option
def token_init(
    module_path: str | None,
    token_serial: str | None,
    token_label: str,
    again: bool,
    as_user: str,
    as_json: bool,
) -> None:
    """Initialise a blank USB key: a random SO PIN (kept, sealed, by the center; never shown) and the
    holder's PIN (PKI_NEW_TOKEN_PIN or a hidden prompt). With --again, an initialised key is erased and
    initialised with its SO PIN on record."""
    from pki.errors import TokenError
    from pki.token_pins import new_so_pin
    from tokens import admin

    if again and token_serial is None:
        raise click.UsageError("--again erases a key: name it with --token-serial")
    user_pin = _holder_pin()
    d = desk(as_user)
    if again:
        assert token_serial is not None
        _init_again(d, module_path, token_serial, token_label, user_pin, as_json)
        return
    d.call("token.admin.allowed")  # before the key is touched: initialising erases it
    for path in module_paths(d, (module_path,) if module_path else ()):
        module = _load(path)
        blanks = admin.blank_slots(module, serial=token_serial)
        if blanks:
            break
    else:
        wanted = f"with serial {token_serial!r} " if token_serial else ""
        raise TokenError(f"no blank USB key {wanted}is present", message_zh="未找到空白USB Key")
    if len(blanks) > 1:
        raise click.UsageError(f"{len(blanks)} blank keys are present: choose one with --token-serial")
    slot, serial = blanks[0]
    so_pin = new_so_pin()
    if serial:  # a key with a serial of its own: the center keeps its SO PIN before the key takes it
        d.call("token.so_pin.register", serial=serial, so_pin=so_pin, replace=True)
    info = admin.initialize(module, slot, so_pin=so_pin, user_pin=user_pin, label=token_label)
    if not serial:  # SoftHSM gives a serial only when initialised
        d.call("token.so_pin.register", serial=info.serial, so_pin=so_pin)
    if as_json:
        print_json({"serial": info.serial, "label": info.label, "so_pin_registered": True})
        return
    click.echo(
        f"token {info.label} (serial {info.serial}) initialised; its SO PIN is on record at the center"
    )


def _init_again(
    d: Any, module_path: str | None, token_serial: str, token_label: str, user_pin: str, as_json: bool
) -> None:
    from tokens import admin

    module, info = _find_token(module_paths(d, (module_path,) if module_path else ()), None, token_serial)
    plan = d.call("token.reset.begin", token_serial=info.serial)
    pins = plan["so_pins"]
    again, used = admin.reinitialize(module, info, so_pins=pins, user_pin=user_pin, label=token_label)
    d.call("token.reset.finish", token_serial=info.serial, pending_used=len(pins) > 1 and used == pins[0])
    if as_json:
        print_json({"serial": again.serial, "label": again.label, "initialised_again": True})
        return
    click.echo(f"token {again.label} (serial {again.serial}) erased and initialised again with its SO PIN")


@token.command("register-so-pin")
@click.option(
    "--module", "module_path", metavar="PATH", help="PKCS#11 module (default: those in tokens.toml)."
)
@click.option("--token-label", metavar="L", help="The key's label.")
@click.option("--token-serial", metavar="S", help="The key's serial.")
@as_option
def token_register_so_pin(
    module_path: str | None, token_label: str | None, token_serial: str | None, as_user: str
) -> None:
    """Register the SO PIN of a key that arrived initialised (PKI_TOKEN_SO_PIN or a hidden prompt); it is
    checked on the key first, and kept only once."""
    from tokens import admin

    if (token_label is None) == (token_serial is None):
        raise click.UsageError("give one of --token-label, --token-serial")
    so_pin = _secret("PKI_TOKEN_SO_PIN", "the key's SO PIN", confirm=False)
    d = desk(as_user)
    module, info = _find_token(
        module_paths(d, (module_path,) if module_path else ()), token_label, token_serial
    )
    admin.check_so_pin(module, info, so_pin)
    d.call("token.so_pin.register", serial=info.serial, so_pin=so_pin)
    click.echo(f"token {info.label} (serial {info.serial}): SO PIN on record at the center")


@token.command("unlock")
@click.option(
    "--module", "module_path", metavar="PATH", help="PKCS#11 module (default: those in tokens.toml)."
)
@click.option("--token-label", metavar="L", help="The key's label.")
@click.option("--token-serial", metavar="S", help="The key's serial.")
@as_option
@json_option
def token_unlock(
    module_path: str | None, token_label: str | None, token_serial: str | None, as_user: str, as_json: bool
) -> None:
    """Carry out the approved unlock deal (解锁) on a USB key: as its SO (the PIN the center keeps), set the
    holder's new PIN (PKI_NEW_TOKEN_PIN or a hidden prompt) and a new SO PIN. The key pair and certificate
    stay. Run it again if it stopped half-way."""
    from tokens import admin

    if (token_label is None) == (token_serial is None):
        raise click.UsageError("give one of --token-label, --token-serial")
    user_pin = _holder_pin()
    d = desk(as_user)
    module, info = _find_token(
        module_paths(d, (module_path,) if module_path else ()), token_label, token_serial
    )
    plan = d.call("token.unlock.begin", token_serial=info.serial)
    done = admin.unblock(
        module, info, so_pins=plan["so_pins"], new_user_pin=user_pin, new_so_pin=plan["new_so_pin"]
    )
    if done.so_pin_error is not None:
        click.echo(
            f"pkictl: warning: the key kept its SO PIN ({done.so_pin_error.message}); the center keeps both "
            "and the next unlock changes it",
            err=True,
        )
    finished = d.call(
        "token.unlock.finish",
        token_serial=info.serial,
        request_id=plan["request_id"],
        so_pin_changed=done.so_pin_changed,
    )
    if as_json:
        print_json(finished)
        return
    click.echo(
        f"token {info.label} (serial {info.serial}) unlocked: the holder's new PIN is set; unlock deal "
        f"{finished['request_id']} on certificate {finished['serial']} is {finished['state']}"
    )
