"""Migration 0009 on a home made before acceptance points: everything it holds goes to 默认受理点, its users stay
center users (they see everything, as before), and the migration goes back down to 0008 cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from pki.application import validate_application
from pki.bootstrap import SCHEMA_REVISION, alembic_config, migrate, schema_revision
from pki.db import UTCDateTime, make_engine
from pki.models import User
from pki.models.point import DEFAULT_POINT
from pki.services import Actor, RequestFilter, Service
from policies import load_policies
from tests.conftest import T0, fixed_seal
from tests.support.data import application

_TYPES: dict[type, Any] = {datetime: UTCDateTime(), date: sa.Date(), bool: sa.Boolean(), int: sa.Integer()}


def _insert(conn: sa.Connection, table: str, **values: Any) -> None:
    """A row as an older pkictl wrote it: only the columns it knew."""
    plain = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
    columns = [sa.column(k, _TYPES.get(type(v), sa.String())) for k, v in plain.items()]
    conn.execute(sa.table(table, *columns).insert().values(**plain))


def _upgrade(db_url: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(db_url)
    command.upgrade(cfg, revision)  # type: ignore[arg-type]


@pytest.fixture
def home_at_0008(db_url: str) -> Iterator[Engine]:
    """A database at 0008 holding a user, requests, a party and a USB key."""
    _upgrade(db_url, "0008")
    engine = make_engine(db_url)
    fields = validate_application(application(), policies=load_policies(), today=date(2020, 10, 20))
    with engine.begin() as conn:
        _insert(
            conn,
            "pki_user",
            username="old-clerk",
            display_name="",
            password_hash="!",
            roles="entry",
            active=True,
            created_at=T0,
        )
        for state, number in (("entered", "11110000000012343B"), ("approved", "91350100MA2Y123446")):
            row = {
                "industry": "",
                "location": "",
                "ownership_type": "",
                "energy_consumption": "",
                "main_energy_types": "",
                **fields,
                "credential_number": number,
                "province": "北京" if number[2:4] == "11" else "福建",
            }
            _insert(
                conn,
                "certificate_request",
                **row,
                state=state,
                version=1,
                entered_by="old-clerk",
                entered_at=T0,
                updated_at=T0,
                acceptance_comment="",
                usbkey_model="",
                review_reason="",
            )
        _insert(
            conn,
            "party",
            platform="production",
            credential_number="11110000000012343B",
            name="某单位",
            province="北京",
            party_kind="unit",
            access_mode="batch",
            industry="",
            location="",
            ownership_type="",
            source_name="",
            imported_by="old-clerk",
            imported_at=T0,
        )
        _insert(
            conn,
            "usb_token",
            serial="OLD-KEY",
            model="飞天诚信 ePass3003",
            label="",
            state="blank",
            holder_unit="",
            holder_credential="",
            first_seen_at=T0,
            updated_at=T0,
            updated_by="old-clerk",
        )
    yield engine
    engine.dispose()


def test_a_home_at_0008_moves_to_the_default_point(home_at_0008: Engine, db_url: str, tmp_path: Path) -> None:
    migrate(home_at_0008)
    assert schema_revision(home_at_0008) == SCHEMA_REVISION
    with home_at_0008.connect() as conn:
        points = conn.execute(sa.text("SELECT id, name, province, parent_id, stock_kept FROM point")).all()
        assert [(name, province, parent, bool(kept)) for _, name, province, parent, kept in points] == [
            (DEFAULT_POINT, "", None, False)
        ]
        default = points[0][0]
        for table in ("certificate_request", "party", "usb_token"):
            assert conn.execute(sa.text(f"SELECT DISTINCT point_id FROM {table}")).scalars().all() == [
                default
            ]
        assert conn.execute(sa.text("SELECT point_id FROM pki_user")).scalars().all() == [None]
    # The service over it: the old user still sees everything; a user placed at a new point sees none of it.
    svc = Service(home_at_0008, audit_seal=fixed_seal(tmp_path))
    old = Actor("old-clerk", frozenset({"entry"}))
    assert len(svc.requests.find(RequestFilter(), actor=old)) == 2
    assert [t.point for t in svc.inventory.tokens(actor=old)] == [DEFAULT_POINT]
    with Session(home_at_0008) as s:
        s.add(User(username="root", password_hash="!", roles="admin", created_at=T0))
        s.commit()
    root = Actor("root", frozenset({"admin"}))
    svc.points.add("武汉受理点", province="湖北", actor=root)
    svc.users.add("wh", "a-long-password", ["entry"], actor=root, point="武汉受理点")
    assert svc.requests.find(RequestFilter(), actor=Actor("wh", frozenset({"entry"}))) == []


def test_the_points_go_down_and_up_again(home_at_0008: Engine, db_url: str) -> None:
    from alembic import command

    migrate(home_at_0008)
    command.downgrade(alembic_config(db_url), "0008")  # type: ignore[arg-type]
    assert schema_revision(home_at_0008) == "0008"
    with home_at_0008.connect() as conn:
        assert "point" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT count(*) FROM certificate_request")).scalar() == 2
    migrate(home_at_0008)
    assert schema_revision(home_at_0008) == SCHEMA_REVISION
