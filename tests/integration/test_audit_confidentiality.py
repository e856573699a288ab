"""What the trail's readers may not learn of (issue 5, with AC-10 and AC-19): entries about a
document a confidentiality flag hides from the reader are left out of their AuditEvents and of
their portal history, and a « nouveau document » alert never announces such a document."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from test_alerts import templates, with_account
from test_policy_api import as_patient, as_representative, patient_id, publish

from conftest import Api, Identity, new_identity
from dmp.domain.actor import Actor, ActorKind
from dmp.services import alerts


def _trail(api: Api, who: str, pid: str) -> str:
    resp = api.get("AuditEvent", who=who, params={"patient": f"Patient/{pid}", "_count": "100"})
    assert resp.status_code == 200, resp.text
    return str(resp.text)


def _targets(api: Api, who: str, pid: str) -> list[str]:
    body: dict[str, Any] = api.get(
        "AuditEvent", who=who, params={"patient": f"Patient/{pid}", "_count": "100"}
    ).json()
    return [
        e["what"]["reference"]
        for entry in body.get("entry", [])
        for e in entry["resource"].get("entity", [])
        if "what" in e and e["what"]["reference"].startswith("DocumentReference/")
    ]


def test_trail_entries_about_hidden_documents_are_left_out(api: Api, patient: Identity) -> None:
    normal = publish(api, patient)
    secret = publish(api, patient, flags=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    announce = publish(api, patient, flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, patient)
    for doc_id in (normal, secret, announce):
        assert api.get(f"Binary/{doc_id}").status_code == 200  # the author reads each one
    me, rep = as_patient(api, pid), as_representative(api, pid)

    mine = _targets(api, me, pid)
    assert f"DocumentReference/{normal}" in mine and f"DocumentReference/{secret}" in mine
    assert announce not in _trail(api, me, pid)  # nothing before the consultation d'annonce
    theirs = _trail(api, rep, pid)
    assert f"DocumentReference/{normal}" in _targets(api, rep, pid)
    assert secret not in theirs and announce not in theirs  # the minor's secret stays one
    # The professional's own actions are theirs to see, flags or not.
    own = _targets(api, "doctor", pid)
    assert f"DocumentReference/{announce}" in own and f"DocumentReference/{secret}" in own

    # The author lifts INVISIBLE_PATIENT after the announcement: the entries appear, all of them.
    current = api.get(f"DocumentReference/{announce}").json()
    labels = [s for s in current["securityLabel"] if s["coding"][0]["code"] != "INVISIBLE_PATIENT"]
    resp = api.patch(
        f"DocumentReference/{announce}", [{"op": "replace", "path": "/securityLabel", "value": labels}]
    )
    assert resp.status_code == 200, resp.text
    assert _targets(api, me, pid).count(f"DocumentReference/{announce}") >= 2  # published, read
    assert announce in _trail(api, rep, pid) and secret not in _trail(api, rep, pid)


def test_no_new_document_alert_for_a_document_awaiting_announcement(api: Api, patient: Identity) -> None:
    pid = with_account(api, patient, email="marie.dupont@example.org")
    with api.runtime.engine.begin() as conn:
        alerts.set_new_document_alerts(conn, uuid.UUID(pid), True)
    publish(api, patient, flags=("INVISIBLE_PATIENT",))
    assert "new_document" not in templates(api, pid)
    publish(api, patient)
    assert templates(api, pid).count("new_document") == 1


def test_portal_history_of_the_patient_and_of_a_representative(portal: Portal) -> None:
    ident, pid = portal.record(new_identity(given="Léo", birth_date=date(2016, 4, 12)))
    portal.publish(ident, title="Carnet de vaccination")
    secret = portal.publish(
        ident, title="Consultation confidentielle", flags=("INVISIBLE_REPRESENTANTS_LEGAUX",)
    )
    child = portal.browser()
    portal.activate(child, ident.nir, portal.patient_account(pid))
    page = child.get("/historique")
    assert page.status_code == 200, page.text
    text = txt(page)
    assert "Historique des accès" in text and "a ajouté un document" in text
    assert text.count("a ajouté un document") == 2  # both publications, for the holder
    assert "accès normal" in text
    # Reading the history is itself traced, and shows on the next reading (the holder's own
    # consultations are hidden unless asked for: issue 13).
    assert "a consulté l'historique des accès" in txt(child.get("/historique?mes_consultations=oui"))

    code = portal.representative(pid, "parent@exemple.fr")
    assert code is not None
    parent = portal.browser()
    portal.activate(parent, "parent@exemple.fr", code)
    theirs = txt(parent.get("/historique"))
    assert theirs.count("a ajouté un document") == 1  # the minor's secret is not hinted at
    assert secret not in parent.get("/historique").text


def test_the_history_stays_readable_once_the_record_is_closed(portal: Portal) -> None:
    """Retention: the trail survives closure, and its holder still reads it."""
    from dmp.services import records

    ident, pid = portal.record()
    portal.publish(ident, title="Compte rendu")
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    with portal.runtime.engine.begin() as conn:
        records.close(
            conn,
            Actor(ActorKind.OPERATOR, "guichet:agent", "Agent ACCUEIL"),
            pid,
            "demande",
            portal.runtime.now(),
        )
    page = b.get("/historique")
    assert page.status_code == 200, page.text
    text = txt(page)
    assert "a fermé le dossier" in text and "a ajouté un document" in text
    assert b.get("/").status_code == 409  # the documents, not the history, follow the closure
