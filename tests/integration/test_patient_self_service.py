"""The patient's self-service pages (issue 13): « Qui a accès », masking, alert preferences,
closure. Every change is made through HTTP as a browser would, then checked through the FHIR API
as a professional, and in the audit trail."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from portal import Browser, Portal, portal_fixture, txt  # noqa: F401  (fixture)
from sqlalchemy import select
from test_policy_api import consent, ids, search

from conftest import Identity
from dmp.store import sealed_fields
from dmp.store.schema import patient, record_event
from dmp.store.schema_audit import audit_entry
from dmp.store.schema_outbox import outbox_message

E = audit_entry.c


def _patient(portal: Portal, **contact: str) -> tuple[Identity, UUID, Browser, str]:
    """A record with one document (by « doctor »), its holder logged in to the portal."""
    ident, pid = portal.record()
    doc_id = portal.publish(ident, title="Compte rendu de consultation")
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid, **contact))
    return ident, pid, b, doc_id


def _attest(portal: Portal, pid: UUID, who: str = "doctor2") -> None:
    body = consent(str(pid), "authorisation", portal.api.cards[who].idnps)
    assert portal.api.post("Consent", body, who=who).status_code == 201


def _trail(portal: Portal, pid: UUID) -> list[Any]:
    with portal.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(E.action, E.outcome, E.actor_id, E.rule_id, E.detail)
                .where(E.patient_id == pid)
                .order_by(E.seq)
            )
        )


def _section(page: str, section: str) -> str:
    """One section (« titre-bloques », …) of the « Qui a accès » page."""
    start = page.index(f'id="{section}"')
    return page[start : page.find("</section>", start)]


def _consent_ids(page: str, section: str, rpps: str = "10002345675") -> list[str]:
    """The consent ids of the action buttons about ``rpps`` in one section of the page."""
    cards = _section(page, section).split('<li class="ss-carte">')[1:]
    return [
        found
        for card in cards
        if rpps in card
        for found in re.findall(r'name="consentement" value="([^"]+)"', card)
    ]


def _change(b: Browser, **fields: str) -> Any:
    """Both steps of a change: the confirmation page, then the confirmed action."""
    b.get("/acces")
    shown = b.post("/acces/confirmer", **fields)
    assert shown.status_code == 200 and "Ce qui va se passer" in txt(shown), shown.text
    done = b.post("/acces/valider", **fields)
    assert done.status_code == 303 and done.headers["location"].startswith("/acces?fait="), done.text
    return b.get(done.headers["location"])


def test_block_unblock_revoke_through_the_page(portal: Portal) -> None:
    ident, pid, b, doc_id = _patient(portal)
    doctor2 = portal.api.cards["doctor2"].idnps
    _attest(portal, pid)
    page = b.get("/acces")
    assert page.status_code == 200
    text = txt(page)
    assert "RPPS 10002345675" in text and "attesté par professionnel RPPS 10002345675" in text
    assert "Accès en urgence (« bris de glace »)" in text and "Par défaut : autorisé" in text
    # Block, from the line of the authorised professional.
    confirm = b.post("/acces/confirmer", action="bloquer", professionnel=doctor2)
    assert "ne pourra plus consulter ni alimenter votre dossier" in txt(confirm)
    assert search(portal.api, ident, who="doctor2").status_code == 200  # nothing happened yet
    after = txt(b.get(b.post("/acces/valider", action="bloquer", professionnel=doctor2).headers["location"]))
    assert "Le professionnel est bloqué" in after
    refused = search(portal.api, ident, who="doctor2")
    assert refused.status_code == 403 and "bloqué" in refused.json()["issue"][0]["diagnostics"]
    change = [t for t in _trail(portal, pid) if t.action == "consent.change"][-1]
    assert (change.outcome, change.actor_id, change.rule_id) == ("success", str(pid), "AC-23.block")
    # Unblock: the professional must be authorised again, then reads again.
    blocks = _consent_ids(b.get("/acces").text, "titre-bloques")
    assert len(blocks) == 1 and _consent_ids(b.last.text, "titre-autorises") == []
    assert "Le professionnel n'est plus bloqué" in txt(_change(b, action="debloquer", consentement=blocks[0]))
    assert search(portal.api, ident, who="doctor2").status_code == 403
    _attest(portal, pid)
    assert ids(search(portal.api, ident, who="doctor2")) == [doc_id]
    # Revoke the new authorisation.
    granted = _consent_ids(b.get("/acces").text, "titre-autorises")
    assert "L'accès a été retiré" in txt(_change(b, action="retirer", consentement=granted[0]))
    assert search(portal.api, ident, who="doctor2").status_code == 403
    rules = [t.rule_id for t in _trail(portal, pid) if t.action == "consent.change"]
    assert rules.count("AC-02.patient-revokes") == 2


def test_pages_are_narrow_screen_and_csp_friendly(portal: Portal) -> None:
    """Lists and cards only (no wide table at 390 px), no inline style or script (strict CSP),
    every page reached from the navigation of « Mon DMP »."""
    _, _, b, doc_id = _patient(portal)
    assert 'href="/gerer"' in b.get("/").text
    for path in ("/gerer", "/acces", "/masquage", f"/masquage/{doc_id}", "/alertes", "/fermeture"):
        page = b.get(path)
        assert page.status_code == 200, path
        assert "<table" not in page.text and "style=" not in page.text and "<script" not in page.text
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        for field in re.findall(r'<(?:input|textarea)[^>]*\bid="([^"]+)"', page.text):
            assert f'for="{field}"' in page.text, (path, field)  # every field has its label


def test_a_forged_or_stale_change_is_refused(portal: Portal) -> None:
    ident, pid, b, _ = _patient(portal)
    _attest(portal, pid)
    doctor2 = portal.api.cards["doctor2"].idnps
    forged = b.client.post("/acces/valider", data={"action": "bloquer", "professionnel": doctor2})
    assert forged.status_code == 403 and "jeton de sécurité" in txt(forged)
    b.get("/acces")
    stale = b.post("/acces/valider", action="debloquer", consentement=str(UUID(int=7)))
    assert stale.status_code == 404 and "déjà été retiré" in txt(stale)
    assert search(portal.api, ident, who="doctor2").status_code == 200
    assert [t for t in _trail(portal, pid) if t.action == "consent.change" and t.actor_id == str(pid)] == []


def test_a_failed_form_keeps_the_input_next_to_its_error(portal: Portal) -> None:
    _, _, b, _ = _patient(portal)
    b.get("/acces")
    r = b.post("/acces/confirmer", action="designer", rpps_medecin="1000234567")
    assert r.status_code == 400
    field = re.search(r'<input id="rpps_medecin"[^>]*>', r.text)
    assert field and 'value="1000234567"' in field.group(0) and 'aria-invalid="true"' in field.group(0)
    assert "rpps_medecin-erreur" in field.group(0) and "11 chiffres attendus, 10 reçus" in txt(r)


def test_medecin_traitant_designated_then_accepted(portal: Portal) -> None:
    ident, pid, b, _ = _patient(portal)
    page = txt(_change(b, action="designer", rpps_medecin="1000 2345 675"))
    assert "le médecin doit maintenant accepter" in page and "en attente de l'acceptation du médecin" in page
    assert search(portal.api, ident, who="doctor2").status_code == 403
    body = consent(str(pid), "medecin-traitant", portal.api.cards["doctor2"].idnps)
    assert portal.api.post("Consent", body, who="doctor2").json()["status"] == "active"
    assert "désigné et accepté par le médecin" in txt(b.get("/acces"))
    assert search(portal.api, ident, who="doctor2").status_code == 200


def test_emergency_consent_refuses_break_glass(portal: Portal) -> None:
    ident, pid, b, _ = _patient(portal)
    page = txt(_change(b, action="urgence", urgence="btg", choix="non"))
    assert "Votre choix pour les accès en urgence est enregistré" in page
    assert "Actuellement : <strong>refusé</strong>. Aucun professionnel ne peut consulter" in page
    token = portal.api.token("urgentist", purpose="ETREAT", justification="patient inconscient")
    url = f"/fhir/DocumentReference?patient.identifier={ident.system}|{ident.nir}"
    resp = portal.api.client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403, resp.text
    changes = [t.rule_id for t in _trail(portal, pid) if t.action == "consent.change"]
    assert changes == ["AC-02.patient-manages"]


def test_mask_and_unmask_a_document(portal: Portal) -> None:
    ident, pid, b, doc_id = _patient(portal)
    _attest(portal, pid)
    listing = txt(b.get("/masquage"))
    assert "ne savent pas qu'un document leur est masqué" in listing  # transparency « hidden »
    assert f'href="/masquage/{doc_id}"' in b.get(f"/documents/{doc_id}/lecture").text  # from « Lire »
    confirm = b.get(f"/masquage/{doc_id}")
    assert confirm.status_code == 200 and "Confirmer : masquer" in txt(confirm)
    r = b.post(f"/masquage/{doc_id}", masquer="oui")
    assert r.status_code == 303 and "Le document est masqué" in txt(b.get(r.headers["location"]))
    assert ids(search(portal.api, ident, who="doctor2")) == []
    assert portal.api.get(f"DocumentReference/{doc_id}", who="doctor2").status_code == 404
    assert ids(search(portal.api, ident)) == [doc_id]  # the author still sees it
    assert "document.mask" in [t.action for t in _trail(portal, pid)]
    b.get(f"/masquage/{doc_id}")
    assert b.post(f"/masquage/{doc_id}", masquer="non").status_code == 303
    last = _trail(portal, pid)[-1]
    assert (last.action, last.outcome, last.actor_id) == ("document.unmask", "success", str(pid))
    assert ids(search(portal.api, ident, who="doctor2")) == [doc_id]
    assert b.get(f"/masquage/{UUID(int=3)}").status_code == 404


def test_masking_explained_per_transparency_setting(portal: Portal) -> None:
    import dataclasses

    _, _, b, doc_id = _patient(portal)
    portal.runtime.settings = dataclasses.replace(portal.runtime.settings, masking_transparency="count")
    assert "informés du nombre de documents qui leur sont masqués" in txt(b.get(f"/masquage/{doc_id}"))
    portal.runtime.settings = dataclasses.replace(portal.runtime.settings, masking_transparency="category")
    assert "du nombre et de la catégorie" in txt(b.get("/masquage"))


def test_a_representative_may_not_mask_nor_close(portal: Portal) -> None:
    from datetime import date

    from conftest import new_identity

    ident, pid = portal.record(new_identity(given="Léo", birth_date=date(2016, 4, 12)))
    doc_id = portal.publish(ident, title="Carnet de vaccination")
    code = portal.representative(pid, "parent@exemple.fr")
    assert code
    b = portal.browser()
    portal.activate(b, "parent@exemple.fr", code)
    assert "Seul le patient titulaire" in txt(b.get("/masquage"))  # the action is not offered
    assert 'action="/masquage/' not in b.get(f"/masquage/{doc_id}").text
    refused = b.post(f"/masquage/{doc_id}", masquer="oui")  # forged anyway: the policy refuses
    assert refused.status_code == 403 and "seuls le patient et l'auteur masquent" in txt(refused)
    assert ids(search(portal.api, ident)) == [doc_id]
    assert 'action="/fermeture"' not in b.get("/fermeture").text
    closing = b.post("/fermeture", confirmation="oui")
    assert closing.status_code == 403 and "seul le titulaire du dossier peut le fermer" in txt(closing)
    refusals = [(t.action, t.rule_id) for t in _trail(portal, pid) if t.outcome == "refused"]
    assert refusals == [
        ("access.refused", "AC-07.mask-not-allowed"),
        ("access.refused", "LC-10.close-not-allowed"),
    ]
    with portal.runtime.engine.connect() as conn:
        assert conn.execute(select(patient.c.record_status).where(patient.c.id == pid)).scalar() == "open"


def test_alert_preferences(portal: Portal) -> None:
    ident, pid, b, _ = _patient(portal, email="marie@exemple.fr")
    page = txt(b.get("/alertes"))
    assert "envoyées par courriel à marie@exemple.fr" in page and "Toujours envoyée" in page
    assert 'value="non" checked' in b.last.text
    failed = b.post("/alertes", nouveaux_documents="peut-être")
    assert failed.status_code == 400 and 'id="nouveaux-erreur"' in failed.text
    assert "courriel à marie@exemple.fr" in txt(failed)
    b.get("/alertes")
    saved = b.post("/alertes", nouveaux_documents="oui")
    assert saved.status_code == 200 and "préférences d'alerte sont enregistrées" in txt(saved)
    assert 'id="nouveaux-oui" name="nouveaux_documents" value="oui" checked' in saved.text
    portal.publish(ident, title="Résultats de biologie")
    with portal.runtime.engine.connect() as conn:
        templates = conn.execute(
            select(outbox_message.c.template).where(outbox_message.c.patient_id == pid)
        ).scalars()
        assert "new_document" in set(templates)


def test_close_my_record(portal: Portal) -> None:
    ident, pid, b, _ = _patient(portal)
    page = txt(b.get("/fermeture"))
    assert "Rien n'est effacé" in page and "caisse d'assurance maladie" in page
    kept = b.post("/fermeture", motif="Je quitte la France")
    assert kept.status_code == 400 and "Je quitte la France</textarea>" in kept.text
    assert 'aria-invalid="true" aria-describedby="confirmation-erreur"' in kept.text
    assert search(portal.api, ident).status_code == 200
    done = b.post("/fermeture", motif="Je quitte la France", confirmation="oui")
    assert done.status_code == 200 and "Votre dossier est fermé" in txt(done)
    closed = search(portal.api, ident)
    assert closed.status_code == 409
    assert closed.json()["issue"][0]["details"]["coding"][0]["code"] == "RECORD_CLOSED"
    last = _trail(portal, pid)[-1]
    assert (last.action, last.outcome, last.actor_id) == ("record.close", "success", str(pid))
    with portal.runtime.engine.connect() as conn:  # the detail is sealed under the record's key
        rows = conn.execute(select(record_event).where(record_event.c.patient_id == pid)).all()
        events = [
            (e.kind, e.actor_id, e.detail)
            for e in sealed_fields.open_rows(conn, rows, "record_event", ("detail",))
        ]
    assert ("closed", str(pid), "à la demande du titulaire, en ligne : Je quitte la France") in events
    assert b.get("/").status_code == 409
    assert "accueil de votre caisse" in txt(b.get("/reactivation"))
