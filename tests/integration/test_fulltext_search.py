"""Full-text search (``_content`` on DocumentReference, CS-04/CS-05): French words with or without
accents, singular or plural, over the title, the body (narrative, embedded PDF) and the facts of
the documents the searcher may see; the index holds keyed hashes and sealed text only."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

from helpers import CDA, bundle, doc
from sqlalchemy import delete, select
from test_policy_api import as_patient, consent, ids, patient_id
from test_publication_coherence import cda_bundle, example_cda
from test_records import dmp_cli  # noqa: F401  (fixture)

from conftest import Api, Identity, new_identity, patient_resource
from dmp.store.schema import clinical_ingestion, document_text, document_token

SYNTHESIS, LAB, SOCIAL, IMAGING = (
    "VSM_1.4_2022.01.xml",
    "CR-BIO_demo_glycemie.xml",
    "LDL-SES_2022.01.xml",
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
)


def _publish_example(api: Api, ident: Identity, name: str, **kw: Any) -> str:
    resp = api.post("", cda_bundle(ident, example_cda(name, ident), **kw))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _publish_titled(api: Api, ident: Identity, title: str, **kw: Any) -> str:
    resp = api.post("", bundle(ident, (doc(ident, CDA, title=title, **kw), CDA)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _search(api: Api, pid: str, words: str, who: str = "doctor", **extra: str) -> Any:
    return api.get(
        "DocumentReference",
        who=who,
        params={"patient": f"Patient/{pid}", "_content": words, "_total": "accurate", **extra},
    )


def _found(api: Api, pid: str, words: str, who: str = "doctor") -> list[str]:
    resp = _search(api, pid, words, who)
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == len(ids(resp))
    return ids(resp)


def test_drug_diagnosis_and_lab_test_with_or_without_accents(api: Api, patient: Identity) -> None:
    synthesis = _publish_example(api, patient, SYNTHESIS)
    lab = _publish_example(api, patient, LAB)
    social = _publish_example(api, patient, SOCIAL)
    imaging = _publish_example(api, patient, IMAGING)
    pid = patient_id(api, patient)
    # a drug (a fact's display text), in any case
    assert _found(api, pid, "plavix") == [synthesis]
    assert _found(api, pid, "Leponex") == [social]
    # a diagnosis, without its accents, in the plural
    assert _found(api, pid, "pyelonephrites") == [synthesis]
    assert _found(api, pid, "Pyélonéphrite aiguë") == [synthesis]
    # a lab test, with or without accents, singular or plural
    for words in ("hémoglobine", "hemoglobine", "HEMOGLOBINES", "créatinine", "creatinines"):
        assert _found(api, pid, words) == [lab], words
    # the text of the PDF a level-1 document embeds
    assert _found(api, pid, "scanner tete") == [imaging]
    # every word must match
    assert _found(api, pid, "plavix leponex") == []
    assert _found(api, pid, "médicament inexistantissime") == []
    # « comprimé » is in both prescriptions; ranked by occurrences, both found
    assert set(_found(api, pid, "comprimés")) == {synthesis, social}


def test_ranked_by_occurrences_unless_sorted(api: Api, patient: Identity) -> None:
    once = _publish_titled(api, patient, "Diabète", date="2026-11-21T10:00:00+01:00")
    twice = _publish_titled(api, patient, "Diabète diabétique", date="2026-11-20T10:00:00+01:00")
    pid = patient_id(api, patient)
    assert _found(api, pid, "diabete") == [twice, once]
    resp = _search(api, pid, "diabete", _sort="-date")
    assert ids(resp) == [once, twice]


def test_a_search_needs_words_and_a_patient(api: Api, patient: Identity) -> None:
    doc_id = _publish_titled(api, patient, "Allergies")
    pid = patient_id(api, patient)
    for words in ("", "le la les", "  ,  "):
        resp = _search(api, pid, words)
        assert resp.status_code == 400, words
        assert resp.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_SEARCH"
    resp = api.get("DocumentReference", params={"_id": doc_id, "_content": "allergie"})
    assert resp.status_code == 400 and "patient" in resp.json()["issue"][0]["diagnostics"]
    assert _found(api, pid, "allergie") == [doc_id]


def test_hidden_documents_are_not_found(api: Api, patient: Identity) -> None:
    masked = _publish_titled(api, patient, "Sérologie VIH", flags=("MASQUE_PS",))
    invisible = _publish_titled(api, patient, "Annonce oncologie", flags=("INVISIBLE_PATIENT",))
    pid = patient_id(api, patient)
    # the author finds both; a professional authorised later does not find the masked one,
    # and gets what a word found nowhere gets
    assert _found(api, pid, "vih") == [masked]
    api.post("Consent", consent(pid, "authorisation", api.cards["doctor2"].idnps), who="doctor2")
    hidden = _search(api, pid, "vih", who="doctor2")
    nowhere = _search(api, pid, "introuvable", who="doctor2")
    assert hidden.status_code == nowhere.status_code == 200
    assert (ids(hidden), hidden.json()["total"]) == (ids(nowhere), nowhere.json()["total"]) == ([], 0)
    # the patient does not find what is invisible to them until it is announced
    me = as_patient(api, pid)
    assert _found(api, pid, "oncologie", who=me) == []
    assert _found(api, pid, "oncologie") == [invisible]


def test_a_replaced_document_retires_its_words(api: Api, patient: Identity) -> None:
    first = _publish_titled(api, patient, "Ordonnance PLAVIX")
    second = _publish_titled(api, patient, "Ordonnance corrigée", replaces=f"DocumentReference/{first}")
    pid = patient_id(api, patient)
    assert _found(api, pid, "plavix") == []
    assert _found(api, pid, "ordonnance") == [second]


def test_a_deleted_document_is_not_found(api: Api, patient: Identity) -> None:
    doc_id = _publish_titled(api, patient, "Ordonnance COUMADINE")
    pid = patient_id(api, patient)
    assert _found(api, pid, "coumadine") == [doc_id]
    ops = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    assert api.patch(f"DocumentReference/{doc_id}", ops).status_code == 200
    assert _found(api, pid, "coumadine") == []
    assert _found(api, pid, "coumadine", who=as_patient(api, pid)) == []


def test_the_index_holds_no_clear_text_and_differs_between_records(api: Api, patient: Identity) -> None:
    other = new_identity(given="Autre")
    assert api.post("Patient", patient_resource(other)).status_code == 201
    a = _publish_example(api, patient, SYNTHESIS)
    b = _publish_example(api, other, SYNTHESIS)
    with api.runtime.engine.connect() as conn:
        t = document_token.c
        tokens = {
            d: set(conn.execute(select(t.token).where(t.document_id == UUID(d))).scalars()) for d in (a, b)
        }
        texts = list(conn.execute(select(document_text)))
    assert tokens[a] and tokens[b] and not tokens[a] & tokens[b]  # the same words, unrelated tokens
    assert all(len(t) == 16 for t in tokens[a])
    for row in texts:
        assert b"PLAVIX" not in row.text_sealed and b"plavix" not in row.text_sealed.lower()


def _embedded_pdf(ident: Identity) -> bytes:
    from lxml import etree

    from dmp.cda import hardened_parser

    root = etree.fromstring(example_cda(IMAGING, ident), hardened_parser())
    (text,) = root.iter("{urn:hl7-org:v3}text")
    return base64.b64decode("".join(text.itertext()))


def test_pdf_documents_are_searched_and_an_unreadable_one_is_kept(api: Api, patient: Identity) -> None:
    pdf = _embedded_pdf(patient)
    assert pdf[:5] == b"%PDF-"
    good = _publish_pdf(api, patient, pdf, "Compte rendu d'imagerie")
    bad = _publish_pdf(api, patient, b"%PDF-1.4\nnot really a pdf", "Radiographie du thorax")
    pid = patient_id(api, patient)
    assert _found(api, pid, "scanner cou") == [good]
    assert _found(api, pid, "radiographie") == [bad]  # its title at least
    with api.runtime.engine.connect() as conn:
        outcome = conn.execute(
            select(clinical_ingestion.c.status, clinical_ingestion.c.detail).where(
                clinical_ingestion.c.document_id == UUID(bad)
            )
        ).one()
    assert outcome.status == "error" and "PDF" in outcome.detail
    assert api.get(f"Binary/{bad}").status_code == 200


def _publish_pdf(api: Api, ident: Identity, content: bytes, title: str) -> str:
    pdf = {"mime_type": "application/pdf", "format_code": "urn:ihe:iti:xds-sd:pdf:2008"}
    d = doc(ident, content, title=title, **pdf)
    resp = api.post("", bundle(ident, (d, content)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def test_documents_published_before_the_index_are_indexed_by_the_operator(
    api: Api, patient: Identity, dmp_cli: Any  # noqa: F811 (the fixture)
) -> None:
    synthesis = _publish_example(api, patient, SYNTHESIS)
    titled = _publish_titled(api, patient, "Allergies")
    pid = patient_id(api, patient)
    with api.runtime.engine.begin() as conn:  # as before the index existed
        conn.execute(delete(document_token))
        conn.execute(delete(document_text))
    assert _found(api, pid, "plavix") == [] and _found(api, pid, "allergie") == []
    res = dmp_cli("documents", "index")
    assert res.exit_code == 0, res.output
    assert "2 document(s) indexé(s) dans 1 dossier(s)." in res.output
    assert _found(api, pid, "plavix") == [synthesis]
    assert set(_found(api, pid, "allergie")) == {synthesis, titled}
    again = dmp_cli("documents", "index")
    assert "0 document(s) indexé(s) dans 0 dossier(s)." in again.output
