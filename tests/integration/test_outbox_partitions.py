"""Outbox relay partitions (ADR 0009): a relay owning a range claims only that range; the
default relay owns every partition and delivers everything, as before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, select

from dmp.cli import main
from dmp.outbox import NO_RECORD, PENDING, SENT, SMS, LoggingSmsTransport, deliver_due, enqueue
from dmp.store.schema_outbox import outbox_message as t
from dmp.store.shard import PARTITIONS, is_nil_key, parse_partitions, partition_of

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.fixture()
def db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(delete(t))
    return engine


def _patient(p: int) -> uuid.UUID:
    """A random record key whose partition is ``p``."""
    return uuid.UUID(int=(uuid.uuid4().int >> 6 << 6) | p)


def _queue(db: Engine, patient_id: uuid.UUID, number: str = "+33612345678") -> uuid.UUID:
    with db.begin() as conn:
        return enqueue(conn, patient_id=patient_id, channel=SMS, recipient=number, template="otp_code",
                       params={"code": "123456", "minutes": 5}, now=NOW)


def _rows(db: Engine) -> dict[uuid.UUID, tuple[uuid.UUID, int, str]]:
    with db.connect() as conn:
        return {r.id: (r.patient_id, r.partition, r.status)
                for r in conn.execute(select(t.c.id, t.c.patient_id, t.c.partition, t.c.status))}


def test_every_message_carries_the_partition_of_its_key(db: Engine) -> None:
    ids = [_queue(db, uuid.uuid4()) for _ in range(20)]
    rows = _rows(db)
    assert all(rows[i][1] == partition_of(rows[i][0]) for i in ids)
    assert all(0 <= rows[i][1] < PARTITIONS for i in ids)


def test_record_less_messages_spread_by_recipient(db: Engine) -> None:
    numbers = [f"+336{n:08d}" for n in range(40)]
    ids = {n: _queue(db, NO_RECORD, n) for n in numbers}
    again = _queue(db, NO_RECORD, numbers[0])
    rows = _rows(db)
    keys = {n: rows[i][0] for n, i in ids.items()}
    assert all(is_nil_key(k) for k in keys.values())
    assert rows[again][0] == keys[numbers[0]]  # one recipient, one key
    assert len(set(keys.values())) > 10 and len({rows[i][1] for i in ids.values()}) > 10
    # they are delivered like any other message
    sms = LoggingSmsTransport()
    assert deliver_due(db, {SMS: sms}, NOW, batch=100).sent == 41


def test_a_relay_owning_a_range_never_claims_outside_it(db: Engine) -> None:
    ids = {p: _queue(db, _patient(p)) for p in range(PARTITIONS)}
    mine = parse_partitions("0-15,40")
    assert mine is not None
    sms = LoggingSmsTransport()
    while deliver_due(db, {SMS: sms}, NOW, batch=5, partitions=mine).claimed:
        pass
    rows = _rows(db)
    sent = {p for p, i in ids.items() if rows[i][2] == SENT}
    assert sent == set(mine)
    assert {rows[m.id][1] for m in sms.sent} == set(mine)
    assert all(rows[i][2] == PENDING for p, i in ids.items() if p not in mine)
    # a relay owning nothing claims nothing
    assert deliver_due(db, {SMS: LoggingSmsTransport()}, NOW, partitions=frozenset()).claimed == 0


def test_disjoint_relays_together_deliver_everything_once(db: Engine) -> None:
    ids = [_queue(db, _patient(p % PARTITIONS)) for p in range(3 * PARTITIONS)]
    low, high = LoggingSmsTransport(), LoggingSmsTransport()
    assert deliver_due(db, {SMS: low}, NOW, batch=500, partitions=parse_partitions("0-31")).sent == 96
    assert deliver_due(db, {SMS: high}, NOW, batch=500, partitions=parse_partitions("32-63")).sent == 96
    assert sorted(m.id for m in low.sent + high.sent) == sorted(ids)


@pytest.mark.parametrize("setting", [None, "0-63", ""])
def test_the_default_relay_delivers_everything(db: Engine, setting: str | None) -> None:
    ids = [_queue(db, _patient(p)) for p in range(PARTITIONS)] + [_queue(db, NO_RECORD)]
    sms = LoggingSmsTransport()
    assert deliver_due(db, {SMS: sms}, NOW, batch=500, partitions=parse_partitions(setting)).sent == len(ids)
    assert sorted(m.id for m in sms.sent) == sorted(ids)
    assert all(status == SENT for _, _, status in _rows(db).values())


def test_parse_partitions() -> None:
    assert parse_partitions(None) is None and parse_partitions(" ") is None
    assert parse_partitions("0-63") == frozenset(range(64))
    assert parse_partitions("3, 5-6") == frozenset({3, 5, 6})
    for bad in ("a-b", "5-2", "0-64", "-1", "1-2-3"):
        with pytest.raises(ValueError, match="DMP_OUTBOX_PARTITIONS"):
            parse_partitions(bad)


def test_cli_relay_takes_its_partitions_from_the_environment(db: Engine, tmp_path: Path) -> None:
    inside, outside = _queue(db, _patient(7)), _queue(db, _patient(8))
    env = {"DMP_VAR_DIR": str(tmp_path / "var"),
           "DMP_DATABASE_URL": db.url.render_as_string(hide_password=False),
           "DMP_SMS_LOG_FILE": str(tmp_path / "var" / "sms.log"), "DMP_OUTBOX_PARTITIONS": "0-7"}
    result = CliRunner().invoke(main, ["outbox", "deliver", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "Envoyés : 1 ;" in result.output
    rows = _rows(db)
    assert (rows[inside][2], rows[outside][2]) == (SENT, PENDING)
    result = CliRunner().invoke(main, ["outbox", "deliver", "--once"],
                                env={**env, "DMP_OUTBOX_PARTITIONS": "x"})
    assert result.exit_code == 1 and "DMP_OUTBOX_PARTITIONS invalide" in result.output


def test_migration_backfills_the_partition_of_existing_messages(tmp_path: Path) -> None:
    from sqlalchemy import column, insert, table, text

    from dmp.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        upgrade(engine, "0002")
        keys = [uuid.uuid4() for _ in range(10)] + [NO_RECORD]
        with engine.begin() as conn:
            # the table as it was at 0002: without the partition column
            old = table("outbox_message",
                        *[column(c.name, c.type) for c in t.columns if c.name != "partition"])
            for k in keys:
                conn.execute(insert(old).values(
                    patient_id=k, id=uuid.uuid4(), channel=SMS, recipient="+33612345678", template="otp_code",
                    params="{}", created_at=NOW, not_before=NOW, attempts=0, status=PENDING))
        upgrade(engine)
        with engine.connect() as conn:
            got = {r.patient_id: r.partition for r in conn.execute(select(t.c.patient_id, t.c.partition))}
            assert conn.execute(text("SELECT count(*) FROM outbox_message")).scalar_one() == len(keys)
        assert got == {k: partition_of(k) for k in keys}
    finally:
        engine.dispose()
