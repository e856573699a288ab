"""CS-06 « tout télécharger »: the archive (FHIR Bundle + original bytes) and the printable PDF
summary of everything the caller may see of a record, from both portals, traced as one export."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from typing import Any

from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from pypdf import PdfReader
from sqlalchemy import select
from test_clinical_facts_api import GLUCOSE, _lab_report
from test_no_oracle import _authorise

from conftest import Identity, new_identity
from dmp.domain.actor import Actor, ActorKind
from dmp.fhir.validate import validate
from dmp.services import export, search, unit_of_work
from dmp.store.schema_audit import audit_entry


def _content(label: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
        f"<title>{label}</title></ClinicalDocument>"
    ).encode()


def _publish(portal: Portal, ident: Identity, label: str, **kw: Any) -> tuple[str, bytes]:
    from helpers import bundle, doc

    content = _content(label)
    resp = portal.api.post("", bundle(ident, (doc(ident, content, title=label, **kw), content)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1]), content


def _record_with_three_documents(portal: Portal) -> tuple[Identity, Any, dict[str, tuple[str, bytes]]]:
    ident, pid = portal.record()
    docs = {
        "plain": _publish(portal, ident, "Compte rendu ordinaire"),
        "masked": _publish(portal, ident, "Compte rendu masqué", flags=("MASQUE_PS",)),
        "announce": _publish(portal, ident, "Résultat à annoncer", flags=("INVISIBLE_PATIENT",)),
    }
    return ident, pid, docs


def _patient_browser(portal: Portal, ident: Identity, pid: Any) -> Any:
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    return b


def _pro_browser(portal: Portal, card: str, email: str) -> tuple[Any, str]:
    """A professional's browser, signed in, and their actor id in the trail (IDNPS)."""
    rpps, code = portal.professional(card, email)
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    return b, "8" + rpps


def _archive(resp: Any) -> zipfile.ZipFile:
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "application/zip"
    assert resp.headers["cache-control"] == "no-store"
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="DMP-') and disposition.endswith('.zip"')
    assert disposition.isascii()
    return zipfile.ZipFile(io.BytesIO(resp.content))


def _documents(zf: zipfile.ZipFile) -> dict[str, bytes]:
    """The archived documents by id (the id ends every file name)."""
    out = {}
    for name in zf.namelist():
        if name.startswith("documents/"):
            stem = name.rsplit(".", 1)[0]
            out[stem[-36:]] = zf.read(name)
    return out


def _bundle(zf: zipfile.ZipFile) -> Any:
    bundle = json.loads(zf.read("bundle.json"))
    validate(bundle, "Bundle")
    assert bundle["type"] == "collection"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        validate(resource, resource["resourceType"])
        assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
    return bundle


def _of_type(bundle: Any, rtype: str) -> list[Any]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _exports(portal: Portal, actor_id: str, action: str = "record.export") -> list[Any]:
    with portal.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_entry.c.action, audit_entry.c.target_ids, audit_entry.c.detail).where(
                    audit_entry.c.actor_id == actor_id, audit_entry.c.action == action
                )
            )
        )


def _targets(entry: Any) -> list[str]:
    raw = entry.target_ids
    return list(json.loads(raw) if isinstance(raw, str | bytes) else raw)


def test_patient_archive_holds_exactly_their_visible_documents(portal: Portal) -> None:
    ident, pid, docs = _record_with_three_documents(portal)
    b = _patient_browser(portal, ident, pid)
    home = b.get("/")
    assert 'href="/telecharger/archive"' in home.text and 'href="/telecharger/resume"' in home.text
    zf = _archive(b.get("/telecharger/archive"))
    assert zf.testzip() is None
    names = zf.namelist()
    assert names[:3] == ["LISEZMOI.txt", "bundle.json", "documents.csv"]
    readme = zf.read("LISEZMOI.txt").decode("utf-8")
    assert "Cette archive contient" in readme and ident.nir in readme
    archived = _documents(zf)
    # The masked document is the patient's to see; the one awaiting its announcement is not.
    assert archived == {docs["plain"][0]: docs["plain"][1], docs["masked"][0]: docs["masked"][1]}
    assert any(n.endswith(f"-Compte-rendu-masque-{docs['masked'][0]}.xml") for n in names)
    bundle = _bundle(zf)
    assert {r["id"] for r in _of_type(bundle, "DocumentReference")} == set(archived)
    (patient,) = _of_type(bundle, "Patient")
    assert patient["id"] == str(pid)
    assert len(_of_type(bundle, "List")) == 2  # the submission set of the hidden document is left out
    assert "Résultat à annoncer" not in zf.read("documents.csv").decode("utf-8-sig")
    assert "Résultat à annoncer" not in json.dumps(bundle, ensure_ascii=False)
    (entry,) = _exports(portal, str(pid))
    assert sorted(_targets(entry)) == sorted(f"DocumentReference/{i}" for i in archived)
    history = txt(b.get("/historique"))
    assert "a téléchargé le dossier (2 documents)" in history


def test_professional_archive_leaves_masked_documents_and_their_facts_out(portal: Portal) -> None:
    ident, pid, docs = _record_with_three_documents(portal)
    _lab_report(portal.api, ident, glucose="1.32", day="18")
    _lab_report(portal.api, ident, glucose="2.10", day="20", flags=("MASQUE_PS",))
    _authorise(portal.api, str(pid), "doctor2")
    b, doctor2 = _pro_browser(portal, "doctor2", "david@chu.test")
    page = b.get(f"/pro/patient?ins={ident.nir}")
    assert f'href="/pro/patient/telecharger/archive?ins={ident.nir}"' in page.text
    zf = _archive(b.get(f"/pro/patient/telecharger/archive?ins={ident.nir}"))
    archived = _documents(zf)
    assert docs["masked"][0] not in archived
    assert archived[docs["plain"][0]] == docs["plain"][1]
    assert archived[docs["announce"][0]] == docs["announce"][1]  # hidden from the patient only
    assert len(archived) == 3  # and the visible lab report
    bundle = _bundle(zf)
    glucose = [
        o["valueQuantity"]["value"] for o in _of_type(bundle, "Observation")
        if o["code"]["coding"][0]["code"] == GLUCOSE
    ]
    assert glucose == [1.32]  # the masked report's value is not exported
    (entry,) = _exports(portal, doctor2)
    assert len(_targets(entry)) == 3


def test_an_unreadable_record_exports_like_a_missing_one(portal: Portal) -> None:
    ident, pid, _ = _record_with_three_documents(portal)
    b, doctor2 = _pro_browser(portal, "doctor2", "david@chu.test")  # not authorised by the patient
    assert b.get(f"/pro/patient?ins={ident.nir}").status_code == 403
    assert "/telecharger/" not in b.last.text
    unknown = new_identity().nir
    for kind in ("archive", "resume"):
        refused = b.get(f"/pro/patient/telecharger/{kind}?ins={ident.nir}")
        missing = b.get(f"/pro/patient/telecharger/{kind}?ins={unknown}")
        malformed = b.get(f"/pro/patient/telecharger/{kind}?ins=pas-un-ins")
        assert refused.status_code == missing.status_code == malformed.status_code == 404
        assert txt(refused) == txt(missing) == txt(malformed)
        assert "Ce dossier n'existe pas ou ne vous est pas accessible." in txt(refused)
    with portal.runtime.engine.connect() as conn:
        refusals = conn.execute(
            select(audit_entry.c.detail).where(
                audit_entry.c.patient_id == pid, audit_entry.c.action == "access.refused"
            )
        ).scalars().all()
    assert any(d.startswith("record.export refusé") for d in refusals)
    assert any(d.startswith("record.summary_pdf refusé") for d in refusals)
    assert _exports(portal, doctor2) == []


def test_the_printable_summary_renders_in_french(portal: Portal) -> None:
    ident, pid, docs = _record_with_three_documents(portal)
    _lab_report(portal.api, ident, glucose="1.32", day="18")
    b = _patient_browser(portal, ident, pid)
    resp = b.get("/telecharger/resume")
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "application/pdf"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-disposition"].endswith('.pdf"')
    assert resp.content.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.content)).pages)
    assert ident.family.upper() in text.upper()
    assert "Date de naissance" in text and ident.nir in text
    for title in ("Allergies et intolérances", "Traitements en cours", "Derniers résultats d'examens",
                  "Vaccinations", "Documents du dossier"):
        assert title in text, title
    assert "Compte rendu masqué" in text  # the patient's own view: masked from professionals only
    assert "Résultat à annoncer" not in text
    assert "Page 1 sur" in text
    (entry,) = _exports(portal, str(pid), "record.summary_pdf")
    assert entry.action == "record.summary_pdf"


def test_a_representative_exports_without_the_documents_hidden_from_representatives(portal: Portal) -> None:
    ident, pid = portal.record(new_identity(given="Léo", birth_date=date(2016, 4, 12)))
    shown = _publish(portal, ident, "Carnet de vaccination")
    hidden = _publish(portal, ident, "Consultation confidentielle", flags=("INVISIBLE_REPRESENTANTS_LEGAUX",))
    code = portal.representative(pid, "tuteur@exemple.fr")
    assert code
    b = portal.browser()
    portal.activate(b, "tuteur@exemple.fr", code)
    zf = _archive(b.get("/telecharger/archive"))
    assert _documents(zf) == {shown[0]: shown[1]}
    assert hidden[0] not in zf.read("bundle.json").decode()
    pdf = b.get("/telecharger/resume")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Carnet de vaccination" in text and "Consultation confidentielle" not in text


def test_the_archive_streams_one_document_at_a_time_and_survives_a_lost_blob(portal: Portal) -> None:
    ident, pid = portal.record()
    kept = [_publish(portal, ident, f"Compte rendu {n}") for n in range(3)]
    lost = _publish(portal, ident, "Compte rendu perdu")
    actor = Actor(kind=ActorKind.PATIENT, id=str(pid), name="Patient")
    rt = portal.runtime
    with unit_of_work.transaction(rt.engine) as conn:
        found = export.prepare(conn, rt, actor, pid)
    (row,) = [d.row for d in found.documents if str(d.id) == lost[0]]
    rt.blobs.delete(row.blob_key)
    chunks = list(export.archive_chunks(rt, found))
    assert len(chunks) >= 1 + len(kept) + 1  # the notice and bundle, each document, the directory
    zf = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert zf.testzip() is None
    assert _documents(zf) == {i: data for i, data in kept}
    errors = zf.read("ERREURS.txt").decode("utf-8")
    assert lost[0] in errors and "altéré" in errors


def test_a_closed_record_says_so_to_whoever_may_open_it(portal: Portal) -> None:
    from dmp.services import records

    ident, pid = portal.record()
    _publish(portal, ident, "Compte rendu ordinaire")
    b = _patient_browser(portal, ident, pid)
    desk = Actor(kind=ActorKind.OPERATOR, id="guichet:test", name="Agent TEST")
    with unit_of_work.transaction(portal.runtime.engine) as conn:
        records.close(conn, desk, pid, "demande du patient", portal.clock.now)
    for kind in ("archive", "resume"):
        closed = b.get(f"/telecharger/{kind}")
        assert closed.status_code == 409 and "Dossier fermé" in txt(closed)
    assert _exports(portal, str(pid)) == [] and _exports(portal, str(pid), "record.summary_pdf") == []


def _token_actor(portal: Portal, card: str) -> Actor:
    """The professional's Actor as their API token carries it."""
    actor: Actor = portal.api.app.state.dmp.signer.verify(portal.api.token(card), now=portal.clock.now)
    return actor


def test_the_export_holds_what_the_document_search_shows_each_reader(portal: Portal) -> None:
    """No rule of its own: for the patient, the author and an authorised colleague, the exported
    documents are those ``GET DocumentReference?patient=…`` returns them (a replaced version
    included in neither)."""
    from helpers import bundle, doc

    ident, pid, docs = _record_with_three_documents(portal)
    new = _content("Version 2")
    replacement = doc(ident, new, title="Version 2", replaces=f"DocumentReference/{docs['plain'][0]}")
    assert portal.api.post("", bundle(ident, (replacement, new))).status_code == 200
    _authorise(portal.api, str(pid), "doctor2")
    readers = {
        "patient": Actor(kind=ActorKind.PATIENT, id=str(pid), name="Patient"),
        "doctor": _token_actor(portal, "doctor"),
        "doctor2": _token_actor(portal, "doctor2"),
    }
    exported: dict[str, set[str]] = {}
    for name, actor in readers.items():
        with unit_of_work.transaction(portal.runtime.engine) as conn:
            page = search.search_documents(
                conn, portal.runtime, actor, [("patient", f"Patient/{pid}"), ("_count", "500")]
            )
            found = export.prepare(conn, portal.runtime, actor, pid)
        exported[name] = {str(d.id) for d in found.documents}
        assert exported[name] == {str(r.id) for r in page.rows}, name
    assert docs["plain"][0] not in exported["patient"] | exported["doctor"]  # replaced
    assert docs["announce"][0] not in exported["patient"] and docs["announce"][0] in exported["doctor2"]
    assert docs["masked"][0] in exported["patient"] and docs["masked"][0] not in exported["doctor2"]
    assert docs["masked"][0] in exported["doctor"]  # the author sees their own
