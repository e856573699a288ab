"""The professional's refusal page (issue 13): one-step attestation with its confirmation, break
the glass for emergency staff only (justification, the patient told), record-scoped and bounded;
on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from portal import Browser, Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select
from test_policy_api import as_patient, consent

from dmp.store import sealed_fields
from dmp.store.schema_audit import audit_entry
from dmp.store.schema_policy import emergency_access

WHY = "Patient inconscient aux urgences, pronostic vital engagé"


def logged_in(portal: Portal, card: str, email: str) -> tuple[Browser, str]:
    rpps, code = portal.professional(card, email)
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)  # activation ends logged in
    return b, "8" + rpps


def entries(portal: Portal, actor_id: str, action: str) -> list[tuple[str | None, str | None, str]]:
    """The trail entries of ``actor_id``'s ``action``, the justification opened as the trail's
    readers open it (sealed under the record's trail key, SE-02)."""
    from dmp.audit import StoredEntry, opened

    with portal.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(audit_entry)
            .where(audit_entry.c.actor_id == actor_id, audit_entry.c.action == action)
            .order_by(audit_entry.c.at)
        ).all()
        read = opened(conn, [StoredEntry.from_row(r) for r in rows])
    return [(e.rule_id, e.justification, e.outcome) for e in read]


def notifications(portal: Portal, pid: uuid.UUID) -> list[str]:
    """The patient's notifications as their centre shows them (the text is sealed, SE-02)."""
    from dmp.services import notifications as centre

    with portal.runtime.engine.connect() as conn:
        return [text for _, _, text in centre.list_for(conn, pid)]


def test_urgentist_breaks_the_glass_from_the_refusal_page(portal: Portal) -> None:
    ident, pid = portal.record()
    doc_id = portal.publish(ident, title="Compte rendu d'hospitalisation")
    other, _ = portal.record()
    portal.publish(other, title="Autre dossier")
    b, me = logged_in(portal, "urgentist", "urgences@chu.test")
    refused = b.get(f"/pro/patient?ins={ident.nir}")
    page = txt(refused)
    assert refused.status_code == 403 and "Accès en urgence" in page
    assert "Le patient en sera informé" in page and 'name="justification"' in page
    assert "Compte rendu d'hospitalisation" not in page
    # No justification: refused next to the field, nothing opened, nothing told.
    empty = b.post(f"/pro/patient/urgence?ins={ident.nir}", ins=ident.nir, justification="  ")
    assert empty.status_code == 400 and 'id="justification-erreur"' in empty.text
    assert "Saisissez la justification" in txt(empty)
    assert entries(portal, me, "access.break_glass") == [] and notifications(portal, pid) == []
    opened = b.post(f"/pro/patient/urgence?ins={ident.nir}", ins=ident.nir, justification=WHY)
    assert opened.status_code == 303 and opened.headers["location"] == f"/pro/patient?ins={ident.nir}"
    record_page = b.get(f"/pro/patient?ins={ident.nir}")
    assert record_page.status_code == 200 and "Compte rendu d'hospitalisation" in txt(record_page)
    assert "Accès en urgence (bris de glace)" in txt(record_page)
    assert b.get(f"/pro/documents/{doc_id}").status_code == 200
    assert entries(portal, me, "access.break_glass") == [("AC-13.break-glass", WHY, "success")]
    notes = notifications(portal, pid)
    assert len(notes) == 1 and "bris de glace" in notes[0] and WHY in notes[0]
    with portal.runtime.engine.connect() as conn:  # the justification is sealed (SE-02)
        rows = conn.execute(select(emergency_access)).all()
        kept = [(k.mode, k.justification) for k in sealed_fields.open_rows(
            conn, rows, "emergency_access", ("justification",))]
    assert kept == [("bris_de_glace", WHY)]
    # For that record only: another record stays refused.
    assert b.get(f"/pro/patient?ins={other.nir}").status_code == 403
    # For a bounded time: past the window, the record is refused again (the session kept alive).
    for _ in range(7):
        portal.clock.advance(minutes=10)
        assert b.get("/pro").status_code == 200
    assert b.get(f"/pro/patient?ins={ident.nir}").status_code == 403


def test_gp_is_not_offered_break_glass_and_a_forged_post_is_refused(portal: Portal) -> None:
    ident, pid = portal.record()
    portal.publish(ident, title="Lettre de liaison")
    b, me = logged_in(portal, "doctor2", "david@chu.test")
    refused = b.get(f"/pro/patient?ins={ident.nir}")
    assert refused.status_code == 403 and 'name="atteste"' in refused.text
    assert "Accès en urgence" not in txt(refused) and "/pro/patient/urgence" not in refused.text
    forged = b.post(f"/pro/patient/urgence?ins={ident.nir}", ins=ident.nir, justification=WHY)
    assert forged.status_code == 403 and "réservé aux professionnels de l'urgence" in txt(forged)
    assert "/pro/patient/urgence" not in forged.text  # not offered again
    assert ("AC-13.emergency-only", WHY, "refused") in entries(portal, me, "access.refused")
    assert entries(portal, me, "access.break_glass") == [] and notifications(portal, pid) == []
    assert b.get(f"/pro/patient?ins={ident.nir}").status_code == 403


def test_patient_emergency_refusal_is_honoured(portal: Portal) -> None:
    ident, pid = portal.record()
    portal.publish(ident, title="Compte rendu")
    me_patient = as_patient(portal.api, str(pid))
    refusal = consent(str(pid), "emergency-btg", deny=True)
    assert portal.api.post("Consent", refusal, who=me_patient).status_code == 201
    b, me = logged_in(portal, "urgentist", "urgences@chu.test")
    assert "Accès en urgence" in txt(b.get(f"/pro/patient?ins={ident.nir}"))  # offered: the policy decides
    r = b.post(f"/pro/patient/urgence?ins={ident.nir}", ins=ident.nir, justification=WHY)
    assert r.status_code == 403 and "le patient a refusé l'accès en bris de glace" in txt(r)
    assert ("AC-13.refused-by-patient", WHY, "refused") in entries(portal, me, "access.refused")
    assert entries(portal, me, "access.break_glass") == [] and notifications(portal, pid) == []
    assert b.get(f"/pro/patient?ins={ident.nir}").status_code == 403


def test_attestation_in_one_step_with_a_confirmation(portal: Portal) -> None:
    ident, _ = portal.record()
    portal.publish(ident, title="Lettre de liaison")
    b, me = logged_in(portal, "doctor2", "david@chu.test")
    refused = b.get(f"/pro/patient?ins={ident.nir}")
    page = txt(refused)
    # An explanation and the form, not an error banner.
    assert "alerte-erreur" not in refused.text and "<title>Erreur" not in refused.text
    assert "Le patient peut vous autoriser" in page and "n'a pas autorisé" in page
    assert "Action non autorisée" not in page  # the policy's reason, as a sentence
    unchecked = b.post(f"/pro/patient/autorisation?ins={ident.nir}", ins=ident.nir)
    assert unchecked.status_code == 400 and 'id="atteste-erreur"' in unchecked.text
    assert entries(portal, me, "consent.change") == []
    done = b.post(f"/pro/patient/autorisation?ins={ident.nir}", ins=ident.nir, atteste="oui")
    assert done.status_code == 303
    assert done.headers["location"] == f"/pro/patient/autorisation/enregistree?ins={ident.nir}"
    confirmation = b.get(done.headers["location"])
    assert confirmation.status_code == 200 and "Autorisation enregistrée" in txt(confirmation)
    assert f'href="/pro/patient?ins={ident.nir}"' in confirmation.text
    assert entries(portal, me, "consent.change") == [("AC-02.attested", None, "success")]
    assert "Lettre de liaison" in txt(b.get(f"/pro/patient?ins={ident.nir}"))
    # An unknown record: the same answer as for a malformed INS.
    assert b.get("/pro/patient/autorisation/enregistree?ins=123").status_code == 404


def test_own_access_history_never_names_hidden_documents(portal: Portal) -> None:
    ident, _ = portal.record()  # opened by the "doctor" card
    seen = portal.publish(ident, title="Lettre de liaison")
    masked = portal.publish(ident, title="Document masqué", flags=("MASQUE_PS",))
    doctor, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    assert doctor.get(f"/pro/documents/{masked}").status_code == 200  # its author
    david, me = logged_in(portal, "doctor2", "david@chu.test")
    assert david.get(f"/pro/patient/mes-acces?ins={ident.nir}").status_code == 404  # not authorised yet
    david.get(f"/pro/patient?ins={ident.nir}")
    attested = david.post(f"/pro/patient/autorisation?ins={ident.nir}", ins=ident.nir, atteste="oui")
    assert attested.status_code == 303
    assert david.get(f"/pro/documents/{seen}").status_code == 200
    assert david.get(f"/pro/documents/{masked}").status_code == 404  # refused, traced, hidden
    page = david.get(f"/pro/patient/mes-acces?ins={ident.nir}")
    assert page.status_code == 200 and "Mes accès à ce dossier" in txt(page)
    lines = page.text.count("<tr") - 1  # the header row
    with portal.runtime.engine.connect() as conn:
        mine = conn.execute(
            select(audit_entry.c.action, audit_entry.c.target_ids).where(audit_entry.c.actor_id == me)
        ).all()
    naming_masked = [m for m in mine if masked in str(m.target_ids)]
    assert naming_masked  # the refused attempt is in the trail…
    shown = [m for m in mine if masked not in str(m.target_ids) and m.action != "audit.read"]
    assert lines == len(shown)  # …but not in the page: their own other entries only, no one else's
    assert "a téléchargé" in txt(page) or "a consulté" in txt(page)
    assert "Charles MULLER" not in txt(page)
    # The history's link from the record page, and its own read traced.
    assert f"/pro/patient/mes-acces?ins={ident.nir}" in david.get(f"/pro/patient?ins={ident.nir}").text
    assert any(m.action == "audit.read" for m in mine)


def test_find_a_patient_by_strict_traits_and_recent_patients(portal: Portal) -> None:
    from datetime import date

    from conftest import new_identity

    born = date(1975, 3, 9)
    ident, pid = portal.record(new_identity(family="LEFÈVRE-DURAND", given="Élodie", birth_date=born))
    portal.record(new_identity(family="LEFÈVRE", given="Élodie", birth_date=born))  # no match
    b, me = logged_in(portal, "doctor2", "david@chu.test")  # not authorised: still told (TD0.2)
    assert "/pro/patients" in b.get("/pro").text
    query = {"nom": "lefevre durand", "prenom": ident.given.lower().replace("é", "e"),
             "naissance": "09/03/1975", "sexe": "female"}
    found = b.get("/pro/patients", params=query)
    page = txt(found)
    assert found.status_code == 200 and "1 dossier(s) correspondant" in page
    assert "LEFÈVRE-DURAND" in page and "Identité" in page and f"/pro/patient?ins={ident.nir}" in found.text
    with portal.runtime.engine.connect() as conn:
        checks = conn.execute(
            select(audit_entry.c.patient_id).where(
                audit_entry.c.actor_id == me, audit_entry.c.action == "record.check"
            )
        ).scalars().all()
    assert checks == [pid]
    none = b.get("/pro/patients", params={**query, "sexe": "male"})
    assert none.status_code == 200 and "Aucun DMP ne correspond" in txt(none)
    # Bad input: each error next to its field, the input kept.
    wrong = {"nom": "", "prenom": "Élodie", "naissance": "31/02/1975", "sexe": "x"}
    bad = b.get("/pro/patients", params=wrong)
    assert bad.status_code == 400
    for name in ("nom", "naissance", "sexe"):
        assert f'id="{name}-erreur"' in bad.text and f'aria-describedby="{name}' in bad.text
    assert 'id="prenom-erreur"' not in bad.text and 'value="Élodie"' in txt(bad)
    assert 'value="31/02/1975"' in bad.text
    # Recent patients: the records this session opened.
    assert "apparaîtront ici" in txt(b.get("/pro/patients"))
    doctor, _ = logged_in(portal, "doctor", "dr@cabinet.test")
    assert doctor.get(f"/pro/patient?ins={ident.nir}").status_code == 200
    recent = txt(doctor.get("/pro/patients"))
    assert "Patients récents" in recent and f"/pro/patient?ins={ident.nir}" in recent
    assert "/pro/patient?ins=" not in txt(b.get("/pro/patients"))  # the refused one is not « recent »


def test_regulator_opens_in_centre_15_mode(portal: Portal) -> None:
    """The card's practice setting SAMU_SMUR reaches the portal's Actor (account ``setting``):
    the refusal page offers both modes; centre 15 is traced and told to the patient."""
    ident, pid = portal.record()
    portal.publish(ident, title="Compte rendu")
    b, me = logged_in(portal, "regulator", "regulation@samu.test")
    refused = b.get(f"/pro/patient?ins={ident.nir}")
    assert refused.status_code == 403
    assert 'value="centre_15"' in refused.text and 'value="bris_de_glace"' in refused.text
    why = "Appel au 15 : douleur thoracique"
    r = b.post(f"/pro/patient/urgence?ins={ident.nir}", ins=ident.nir, justification=why, mode="centre_15")
    assert r.status_code == 303
    page = txt(b.get(f"/pro/patient?ins={ident.nir}"))
    assert "Compte rendu" in page and "régulation médicale (centre 15)" in page
    assert entries(portal, me, "access.centre15") == [("AC-14.centre15", why, "success")]
    notes = notifications(portal, pid)
    assert len(notes) == 1 and "centre 15" in notes[0]
    # A practice setting outside JDV_J04 is refused at the directory.
    from dmp.accounts.service import DirectoryEntry
    from dmp.errors import DmpError

    try:
        DirectoryEntry(rpps="10001234565", profession="10", name="X Y", setting="SAMU").validated()
    except DmpError as err:
        assert "JDV_J04" in err.message
    else:
        raise AssertionError("an unknown practice setting was accepted")
