"""The unit of work every adapter uses: all or nothing, refusals traced, races named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from dmp.audit import count_entries
from dmp.domain.actor import Actor, ActorKind
from dmp.errors import DmpError
from dmp.services import trail
from dmp.services.context import Runtime
from dmp.services.trail import AuditAction
from dmp.services.unit_of_work import integrity_error, transaction
from dmp.store.schema_accounts import auth_throttle

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DOCTOR = Actor(ActorKind.PROFESSIONAL, "810001234565", "Dr Muller", profession="10")


def _throttle_rows(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(auth_throttle)).scalar_one())


def test_a_refusal_rolls_the_work_back_and_keeps_its_trail_entry(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        before = count_entries(conn)
    with pytest.raises(DmpError) as refused, transaction(runtime.engine) as conn:
        conn.execute(insert(auth_throttle).values(key="k", failures=1, first_failure_at=NOW))
        raise trail.refused(
            DmpError("FORBIDDEN", "essai"),
            DOCTOR,
            AuditAction.RECORD_READ,
            patient_id=None,
            at=NOW,
            decision=None,
        )
    assert refused.value.code == "FORBIDDEN"
    assert _throttle_rows(runtime) == 0  # the work is gone…
    with runtime.engine.connect() as conn:
        assert count_entries(conn) == before + 1  # …the refusal is traced


def test_success_commits(runtime: Runtime) -> None:
    with transaction(runtime.engine) as conn:
        conn.execute(insert(auth_throttle).values(key="k", failures=1, first_failure_at=NOW))
    assert _throttle_rows(runtime) == 1


def test_a_uniqueness_race_is_named(runtime: Runtime) -> None:
    with pytest.raises(DmpError) as named, transaction(runtime.engine) as conn:
        conn.execute(insert(auth_throttle).values(key="k", failures=1, first_failure_at=NOW))
        conn.execute(insert(auth_throttle).values(key="k", failures=1, first_failure_at=NOW))
    assert named.value.code == "TRANSACTION_FAILED"
    assert _throttle_rows(runtime) == 0


@pytest.mark.parametrize(
    ("constraint", "code"),
    [
        ("document_uid_pkey", "DUPLICATE_UNIQUE_ID"),
        ("ins_index_pkey", "RECORD_EXISTS"),
        ("other", "TRANSACTION_FAILED"),
    ],
)
def test_integrity_errors_map_to_refusals(constraint: str, code: str) -> None:
    cause = Exception(f'duplicate key value violates unique constraint "{constraint}"')
    exc = IntegrityError("INSERT …", {}, cause)
    assert integrity_error(exc).code == code
