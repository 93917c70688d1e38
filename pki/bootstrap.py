"""Wiring: settings -> engine -> migrated schema -> Service. The only place adapters build the core."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from pki.audit_key import KeyProtection, PassphraseProtection
from pki.audit_seal import KEY_FILE, AuditSeal
from pki.ca.keystore import FileKeyStore, KeyStore
from pki.clock import Clock
from pki.config import Settings
from pki.db import make_engine, normalize_url
from pki.errors import ConfigurationError
from pki.services import Service
from policies import load_policies

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn  # type: ignore[attr-defined]
        command.upgrade(cfg, "head")  # type: ignore[arg-type]


# The newest migration; tests check it equals Alembic's head. Checking it with one query keeps Alembic out
# of every command's start-up.
SCHEMA_REVISION = "0012"


def schema_revision(engine: Engine) -> str | None:
    """The migrated revision, or None for a database never initialized. Connection errors propagate."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def init_home(settings: Settings) -> Engine:
    """Create the home (owner-only) and a migrated database; safe to run again."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.home.chmod(0o700)  # also tighten a home made by hand
    engine = make_engine(settings.database_url)
    old_umask = os.umask(0o077)  # SQLite creates the database and its WAL files owner-only
    try:
        migrate(engine)
    finally:
        os.umask(old_umask)
    return engine


def initialize(
    settings: Settings,
    passphrase: Callable[[], str],
    *,
    audit_passphrase: Callable[[], str] | None = None,
    clock: Clock | None = None,
    public_url: str | None = None,
) -> Service:
    """`pkictl init`: the home, the migrated schema, the public base URL when given (before the hierarchy,
    so that new CA certificates point at it), once the audit key (under ``audit_passphrase``: from then on
    every record is keyed, older ones sealed by a checkpoint) and the CA hierarchy (keys under
    ``passphrase``)."""
    from pki.services.home_settings import normalize_public_url

    url = normalize_public_url(public_url) if public_url is not None else None  # refuse before any change
    service = Service(
        init_home(settings),
        clock=clock,
        keys=key_store(settings, passphrase),
        policies=load_policies(settings.policy_dir),
        audit_seal=audit_seal(settings, audit_passphrase),
    )
    service.audit.establish_key()
    if url is not None:
        service.settings.set_public_url(url, actor="init")
    service.authority.ensure_hierarchy()
    return service


def audit_seal(settings: Settings, secret: Callable[[], str] | None) -> AuditSeal:
    """The audit key (HOME/audit/audit.key, opened on first use with ``secret``: its passphrase, or the user
    PIN of its HSM token per audit.toml [key]) and the checkpoint file."""
    protection: KeyProtection | None = None
    if secret is not None:
        policy = load_policies(settings.policy_dir).audit
        if policy.key_protection == "pkcs11":
            from tokens.audit_protection import TokenProtection

            protection = TokenProtection(policy.pkcs11_module, policy.pkcs11_token_label, secret)
        else:
            protection = PassphraseProtection(secret)
    return AuditSeal(settings.home / KEY_FILE, protection, settings.audit_checkpoint_path())


def key_store(settings: Settings, passphrase: Callable[[], str]) -> KeyStore:
    """Where CA keys live, per ca.toml [keys]: encrypted files in the home's ca/ (``passphrase`` is the file
    passphrase), or an HSM token through PKCS#11 (``passphrase`` is the token's user PIN)."""
    policy = load_policies(settings.policy_dir).ca
    if policy.key_store == "pkcs11":
        from tokens.keystore import Pkcs11KeyStore

        return Pkcs11KeyStore(policy.pkcs11_module, policy.pkcs11_token_label, passphrase)
    return FileKeyStore(settings.home / "ca", passphrase)


def open_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    passphrase: Callable[[], str] | None = None,
    audit_passphrase: Callable[[], str] | None = None,
) -> Service:
    """The service over an existing, initialized home. Raises ConfigurationError otherwise. Without
    ``audit_passphrase`` it can only read: writes need the audit key."""
    engine = make_engine(settings.database_url)
    try:
        database = engine.url.database
        if engine.url.get_backend_name() == "sqlite" and database and not Path(database).exists():
            raise ConfigurationError(
                f"no pkictl home at {settings.home}: run 'pkictl init' first (or set PKI_HOME)"
            )
        revision = schema_revision(engine)
        if revision != SCHEMA_REVISION:
            raise ConfigurationError(
                f"database schema is at {revision or 'nothing'}, pkictl needs {SCHEMA_REVISION}: run 'pkictl init'"
            )
    except BaseException:
        engine.dispose()
        raise
    keys = key_store(settings, passphrase) if passphrase is not None else None
    return Service(
        engine,
        clock=clock,
        keys=keys,
        policies=load_policies(settings.policy_dir),
        audit_seal=audit_seal(settings, audit_passphrase),
    )
