"""AC-10 (issue 15): a document awaiting its consultation d'annonce is shown to the patient only
once its author or the médecin traitant lifts INVISIBLE_PATIENT — never by the passing of time —
and its author is reminded after DMP_INVISIBLE_PATIENT_MAX_DAYS, once, through the outbox."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select, update
from test_audit_confidentiality import _targets
from test_policy_api import as_patient, ids, patient_id, publish, search

from conftest import Api, Identity
from dmp.accounts import DirectoryEntry, upsert_professional
from dmp.cli import main
from dmp.services.announcement import send_reminders
from dmp.store import sealed_fields
from dmp.store.schema import document
from dmp.store.schema_outbox import outbox_message


def _age(api: Api, doc_id: str, days: int) -> None:
    with api.runtime.engine.begin() as conn:
        conn.execute(
            update(document)
            .where(document.c.id == uuid.UUID(doc_id))
            .values(submission_time=api.runtime.now() - timedelta(days=days))
        )


def _lift(api: Api, doc_id: str, who: str = "doctor") -> Any:
    current = api.get(f"DocumentReference/{doc_id}", who=who).json()
    labels = [s for s in current["securityLabel"] if s["coding"][0]["code"] != "INVISIBLE_PATIENT"]
    return api.patch(
        f"DocumentReference/{doc_id}", [{"op": "replace", "path": "/securityLabel", "value": labels}], who=who
    )


def _reminders(api: Api) -> list[Any]:
    with api.runtime.engine.connect() as conn:
        query = select(outbox_message).where(outbox_message.c.template == "announcement_reminder")
        rows = conn.execute(query)
        return list(sealed_fields.open_rows(conn, rows, "outbox_message", ("recipient", "params")))  # SE-02


def test_an_old_unannounced_document_never_reaches_the_patient(api: Api, patient: Identity) -> None:
    announce = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, patient)
    _age(api, announce, 400)  # far beyond DMP_INVISIBLE_PATIENT_MAX_DAYS
    me = as_patient(api, pid)
    assert announce not in ids(search(api, patient, who=me))
    assert api.get(f"DocumentReference/{announce}", who=me).status_code == 404
    assert api.get(f"Binary/{announce}", who=me).status_code == 404
    assert f"DocumentReference/{announce}" not in _targets(api, me, pid)
    before = _targets(api, "doctor", pid).count(f"DocumentReference/{announce}")
    # The author lifts the flag after the consultation d'annonce: traced, naming the document.
    resp = _lift(api, announce)
    assert resp.status_code == 200, resp.text
    assert _targets(api, "doctor", pid).count(f"DocumentReference/{announce}") > before
    assert announce in ids(search(api, patient, who=me))
    assert api.get(f"DocumentReference/{announce}", who=me).status_code == 200
    assert f"DocumentReference/{announce}" in _targets(api, me, pid)


def test_the_patient_may_not_lift_the_flag(api: Api, patient: Identity) -> None:
    announce = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, patient)
    _age(api, announce, 400)
    me = as_patient(api, pid)
    resp = api.patch(
        f"DocumentReference/{announce}", [{"op": "replace", "path": "/securityLabel", "value": []}], who=me
    )
    assert resp.status_code != 200
    assert announce not in ids(search(api, patient, who=me))


def test_reminders_once_per_document_to_the_directory_address(api: Api, patient: Identity) -> None:
    rt = api.runtime
    recent = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    old = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    announced = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    publish(api, patient)  # nothing to announce
    for doc_id in (old, announced):
        _age(api, doc_id, 45)
    assert _lift(api, announced).status_code == 200
    with rt.engine.begin() as conn:  # the author (card "doctor") is in the directory, with an address
        upsert_professional(
            conn,
            DirectoryEntry("10001234565", "10", "Charles MULLER", email="c.muller@example.org"),
            rt.now(),
            settings=rt.settings,
        )
    with rt.engine.begin() as conn:
        report = send_reminders(conn, now=rt.now(), max_days=rt.settings.invisible_patient_max_days)
    assert report.queued == [uuid.UUID(old)] and not report.undeliverable
    (m,) = _reminders(api)
    assert m.recipient == "c.muller@example.org" and m.status == "pending"
    assert m.dedup_key == f"announcement-reminder:{old}" and recent not in m.params
    assert f"DocumentReference/{old}" in m.params
    with rt.engine.begin() as conn:  # idempotent
        again = send_reminders(conn, now=rt.now(), max_days=rt.settings.invisible_patient_max_days)
    assert again.queued == [] and again.already == 1 and len(_reminders(api)) == 1


def test_without_a_known_address_the_reminder_is_undeliverable(
    api: Api, patient: Identity, tmp_path: Path
) -> None:
    old = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    _age(api, old, 31)
    env = {
        "DMP_VAR_DIR": str(tmp_path),
        "DMP_DATABASE_URL": api.runtime.engine.url.render_as_string(hide_password=False),
        "DMP_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "DMP_BASE_URL": "http://testserver",
    }
    out = CliRunner().invoke(main, ["documents", "announcement-reminders"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "0 rappel(s) mis en file" in out.output and "1 rappel(s) impossible" in out.output
    assert f"DocumentReference/{old}" in out.output
    (m,) = _reminders(api)
    assert m.status == "failed" and m.recipient == "" and "annuaire" in m.last_error
    out = CliRunner().invoke(main, ["documents", "announcement-reminders"], env=env, catch_exceptions=False)
    assert "1 document(s) déjà rappelé(s)" in out.output and len(_reminders(api)) == 1
