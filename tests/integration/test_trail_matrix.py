"""Every way into a record's data leaves EXACTLY the trail entries it should.

One case per FHIR route, portal page and desk/operator command that changes or reveals record
data: seed, call, then compare the (action, outcome) list of the entries appended to the
record's chain with the expected one. ``test_every_fhir_route_is_in_the_matrix`` fails when a
route is added to ``dmp.api.fhir_routes.routes`` without a case here (or an exemption).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from helpers import CDA, bundle, doc
from portal import Browser, Portal, portal_fixture  # noqa: F401  (fixture)
from sqlalchemy import select
from starlette.routing import Route
from test_policy_api import as_patient, as_representative, consent

from conftest import new_identity, patient_resource
from dmp.api import fhir_routes
from dmp.audit import AuditAction as A
from dmp.cli import main
from dmp.fhir.searchparams import FACT_TYPES
from dmp.store.schema_audit import audit_entry

S, R = "success", "refused"
MASK = [
    {
        "op": "add",
        "path": "/securityLabel/-",
        "value": {
            "coding": [
                {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
                    "TRE-A07-StatutVisibiliteDocument",
                    "code": "MASQUE_PS",
                }
            ]
        },
    }
]


@dataclass
class World:
    """One record opened by "doctor", with one published document (a List, a DocumentReference
    and its Binary), and the ways to reach it."""

    portal: Portal
    tmp: Path
    ident: Any
    pid: UUID
    doc_id: str
    list_id: str
    extra: dict[str, Any]

    @property
    def api(self) -> Any:
        return self.portal.api

    @property
    def ref(self) -> str:
        return f"Patient/{self.pid}"

    @property
    def ins(self) -> str:
        return f"{self.ident.system}|{self.ident.nir}"

    def patient(self) -> str:
        return as_patient(self.api, str(self.pid))

    def ok(self, resp: Any, status: int = 200) -> Any:
        assert resp.status_code == status, resp.text
        return resp

    def post_search(self, rtype: str, who: str = "doctor", **form: str) -> Any:
        return self.api.client.post(
            f"/fhir/{rtype}/_search",
            data=form,
            headers={**self.api.headers(who), "Content-Type": "application/x-www-form-urlencoded"},
        )

    def cli(self, *args: str, code: int = 0) -> str:
        s = self.portal.runtime.settings
        env = {
            "DMP_DATABASE_URL": self.portal.runtime.engine.url.render_as_string(hide_password=False),
            "DMP_VAR_DIR": str(s.var_dir),
            "DMP_BASE_URL": s.base_url,
            "DMP_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),  # the API runtime's (conftest)
        }
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    def holder(self) -> Browser:
        """The record's holder, signed in on the patients' portal."""
        b = self.portal.browser()
        self.portal.activate(b, self.ident.nir, self.portal.patient_account(self.pid))
        return b

    def pro(self, card: str = "doctor") -> Browser:
        """A professional signed in on the professionals' portal."""
        rpps, code = self.portal.professional(card, f"{card}@cabinet.test")
        b = self.portal.browser("/pro")
        self.portal.activate(b, rpps, code)
        return b


def _world(portal: Portal, tmp: Path, born: date = date(1980, 5, 17)) -> World:
    ident, pid = portal.record(new_identity(birth_date=born))
    d = doc(ident, CDA)
    resp = portal.api.post("", bundle(ident, (d, CDA)))
    assert resp.status_code == 200, resp.text
    locations = [e["response"]["location"] for e in resp.json()["entry"]]
    ids = {loc.split("/fhir/")[-1].split("/")[0]: loc.split("/fhir/")[-1].split("/")[1] for loc in locations}
    return World(portal, tmp, ident, pid, ids["DocumentReference"], ids["List"], {})


Run = Callable[[World], "UUID | None"]


@dataclass(frozen=True)
class Case:
    id: str
    run: Run  # the call; returns the record whose chain to read when it is not world.pid
    expected: tuple[tuple[str, str], ...]
    routes: tuple[tuple[str, str], ...] = ()  # the FHIR (method, path) it exercises
    setup: Callable[[World], None] | None = None
    minor: bool = False  # the record's holder is a child (representatives)


def _entries(w: World, pid: UUID) -> list[tuple[str, str]]:
    with w.portal.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(audit_entry.c.action, audit_entry.c.outcome)
            .where(audit_entry.c.patient_id == pid)
            .order_by(audit_entry.c.seq)
        ).all()
    return [(r.action, r.outcome) for r in rows]


# ---- the calls ------------------------------------------------------------------------------


def _publish(w: World) -> None:
    w.ok(w.api.post("", bundle(w.ident)))


def _simplified_publish(w: World) -> None:
    """ITI-105: the DocumentReference alone, the document in attachment.data."""
    import base64

    d = doc(w.ident, CDA)
    d["content"][0]["attachment"].pop("url", None)
    d["content"][0]["attachment"]["data"] = base64.b64encode(CDA).decode()
    w.ok(w.api.post("DocumentReference", d), 201)


def _replace(w: World) -> None:
    d = doc(w.ident, CDA, replaces=f"DocumentReference/{w.doc_id}")
    w.ok(w.api.post("", bundle(w.ident, (d, CDA))))


def _search_docs(who: str, status: int) -> Run:
    def run(w: World) -> None:
        w.ok(w.api.get("DocumentReference", who=who, params={"patient.identifier": w.ins}), status)

    return run


def _post_search_docs(w: World) -> None:
    w.ok(w.post_search("DocumentReference", **{"patient.identifier": w.ins}))


def _read_doc(who: str, status: int) -> Run:
    def run(w: World) -> None:
        w.ok(w.api.get(f"DocumentReference/{w.doc_id}", who=who), status)

    return run


def _vread(rtype: str) -> Run:
    def run(w: World) -> None:
        ident = {"DocumentReference": w.doc_id, "Binary": w.doc_id, "List": w.list_id, "Patient": str(w.pid)}
        w.ok(w.api.get(f"{rtype}/{ident[rtype]}/_history/1"))

    return run


def _mask_as_patient(w: World) -> None:
    w.ok(w.api.patch(f"DocumentReference/{w.doc_id}", MASK, who=w.patient()))


def _unmask_as_patient(w: World) -> None:
    labels = [{"op": "replace", "path": "/securityLabel", "value": []}]
    w.ok(w.api.patch(f"DocumentReference/{w.doc_id}", labels, who=w.patient()))


def _mask_refused(w: World) -> None:
    w.ok(w.api.patch(f"DocumentReference/{w.doc_id}", MASK, who="doctor2"), 404)


def _conditional_delete(w: World) -> None:
    ops = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    w.ok(w.api.patch(f"DocumentReference?identifier=urn:uuid:{w.doc_id}", ops))


def _search_lists(w: World) -> None:
    w.ok(w.api.get("List", params={"patient": w.ref}))


def _post_search_lists(w: World) -> None:
    w.ok(w.post_search("List", patient=w.ref))


def _read_list(w: World) -> None:
    w.ok(w.api.get(f"List/{w.list_id}"))


def _binary(who: str, status: int) -> Run:
    def run(w: World) -> None:
        w.ok(w.api.get(f"Binary/{w.doc_id}", who=who), status)

    return run


def _patient_search(w: World) -> None:
    w.ok(w.api.get("Patient", params={"identifier": w.ins}))


def _patient_post_search(w: World) -> None:
    w.ok(w.post_search("Patient", identifier=w.ins))


def _patient_read(w: World) -> None:
    w.ok(w.api.get(f"Patient/{w.pid}"))


def _patient_create(w: World) -> UUID:
    resp = w.ok(w.api.post("Patient", patient_resource(new_identity())), 201)
    return UUID(resp.json()["id"])


def _audit_events(who: str | None) -> Run:
    def run(w: World) -> None:
        w.ok(w.api.get("AuditEvent", who=who or w.patient(), params={"patient": w.ref}))

    return run


def _audit_post_search(w: World) -> None:
    w.ok(w.post_search("AuditEvent", who=w.patient(), patient=w.ref))


def _consents(w: World) -> None:
    w.ok(w.api.get("Consent", who=w.patient(), params={"patient": w.ref}))


def _consents_post_search(w: World) -> None:
    w.ok(w.post_search("Consent", who=w.patient(), patient=w.ref))


def _block(w: World) -> None:
    body = consent(str(w.pid), "block", w.api.cards["doctor2"].idnps)
    w.ok(w.api.post("Consent", body, who=w.patient()), 201)


def _block_refused(w: World) -> None:
    body = consent(str(w.pid), "authorisation", w.api.cards["nurse"].idnps)
    w.ok(w.api.post("Consent", body, who="doctor2"), 403)


def _authorise_setup(w: World) -> None:
    body = consent(str(w.pid), "authorisation", w.api.cards["doctor2"].idnps)
    w.extra["consent"] = w.ok(w.api.post("Consent", body, who=w.patient()), 201).json()["id"]


def _revoke(w: World) -> None:
    w.ok(w.api.client.delete(f"/fhir/Consent/{w.extra['consent']}", headers=w.api.headers(w.patient())), 204)


def _get(path: str, who: str, status: int, **params: str) -> Run:
    """GET /fhir/<path> (``{w}`` formatted) as a professional card."""

    def run(w: World) -> None:
        query = {k: v.format(w=w) for k, v in params.items()}
        w.ok(w.api.get(path.format(w=w), who=who, params=query), status)

    return run


# portal


def _portal_setup(space: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        if space == "holder":
            w.extra["b"] = w.holder()
        elif space == "representative":
            email = "parent@exemple.fr"
            with w.portal.runtime.engine.begin() as conn:
                from dmp.accounts import service

                code = service.add_representative(
                    conn, w.pid, w.portal.clock.now, settings=w.portal.runtime.settings, email=email,
                    agent="Agent TEST",
                ).activation_code
            assert code
            b = w.portal.browser()
            w.portal.activate(b, email, code)
            w.extra["b"] = b
        else:
            w.extra["b"] = w.pro(space)

    return setup


def _page(path: str, status: int = 200) -> Run:
    def run(w: World) -> None:
        w.ok(w.extra["b"].get(path.format(w=w)), status)

    return run


def _pro_attest(w: World) -> None:
    """The page flow: the refused record page (traced) offers the form; attesting is a change."""
    b: Browser = w.extra["b"]
    b.get(f"/pro/patient?ins={w.ident.nir}")
    w.ok(b.post("/pro/patient/autorisation", ins=w.ident.nir, atteste="oui"), 303)


# desk and operator commands


def _cli_create(w: World) -> UUID:
    ident = new_identity()
    out = w.cli(
        "record", "create", "--ins", ident.nir, "--family", ident.family, "--given", ident.given, "--sex",
        ident.sex.value, "--birth-date", ident.birth_date.isoformat(), "--birth-place", ident.birth_place,
        "--agent", "Agent TEST",
    )
    found = re.search(r"Patient/([0-9a-f-]{36})", out)
    assert found, out
    return UUID(found.group(1))


def _cli_close(w: World) -> None:
    w.cli("record", "close", w.ref, "--agent", "Agent TEST")


def _cli_reactivate(w: World) -> None:
    w.cli("record", "reactivate", w.ref, "--agent", "Agent TEST")


def _cli_add_rep(w: World) -> None:
    w.cli("record", "add-representative", w.ref, "--email", "parent@exemple.fr", "--agent", "Agent TEST")


def _cli_remove_rep(w: World, email: str = "parent@exemple.fr", code: int = 0) -> None:
    w.cli("record", "remove-representative", w.ref, "--email", email, "--agent", "Agent TEST", code=code)


def _cli_majority(w: World) -> None:
    assert w.ref in w.cli("record", "majority-check", w.ref)


def _cli_history(w: World) -> None:
    assert "a ajouté un document" in w.cli("audit", "history", w.ref)


def _cli_export(w: World) -> None:
    out = w.tmp / "export.ndjson"
    w.cli("audit", "export", "--patient", w.ref, "--out", str(out))
    assert out.read_text().count("\n") >= 2


def _cli_activation_code(w: World) -> None:
    w.cli("record", "activation-code", w.ref, "--agent", "Agent TEST")


GET, POST, PATCH, DELETE = "GET", "POST", "PATCH", "DELETE"
def _facts(rtype: str, post: bool) -> Run:
    """A search of one kind of clinical fact by the author of the record's documents."""

    def run(w: World) -> None:
        if post:
            w.ok(w.post_search(rtype, patient=w.ref))
        else:
            w.ok(w.api.get(rtype, params={"patient": w.ref}))

    return run


CASES = [
    # ---- FHIR API ----
    Case("fhir-iti65-publish", _publish, ((A.DOCUMENT_PUBLISH, S),), ((POST, "/"),)),
    Case("fhir-iti105-publish", _simplified_publish, ((A.DOCUMENT_PUBLISH, S),),
         ((POST, "/DocumentReference"),)),
    Case("fhir-iti65-replace", _replace, ((A.DOCUMENT_REPLACE, S),), ((POST, "/"),)),
    Case("fhir-docref-search", _search_docs("doctor", 200), ((A.RECORD_SEARCH, S),),
         ((GET, "/DocumentReference"),)),
    Case("fhir-docref-search-refused", _search_docs("doctor2", 403), ((A.ACCESS_REFUSED, R),),
         ((GET, "/DocumentReference"),)),
    Case("fhir-docref-post-search", _post_search_docs, ((A.RECORD_SEARCH, S),),
         ((POST, "/DocumentReference/_search"),)),
    Case("fhir-docref-read", _read_doc("doctor", 200), ((A.DOCUMENT_READ, S),),
         ((GET, "/DocumentReference/{id}"),)),
    Case("fhir-docref-read-refused", _read_doc("doctor2", 404), ((A.ACCESS_REFUSED, R),),
         ((GET, "/DocumentReference/{id}"),)),
    Case("fhir-docref-vread", _vread("DocumentReference"), ((A.DOCUMENT_READ, S),),
         ((GET, "/DocumentReference/{id}/_history/{vid}"),)),
    Case("fhir-docref-patch-mask", _mask_as_patient, ((A.DOCUMENT_MASK, S),),
         ((PATCH, "/DocumentReference/{id}"),)),
    Case("fhir-docref-patch-unmask", _unmask_as_patient, ((A.DOCUMENT_UNMASK, S),),
         ((PATCH, "/DocumentReference/{id}"),), setup=_mask_as_patient),
    Case("fhir-docref-patch-refused", _mask_refused, ((A.ACCESS_REFUSED, R),),
         ((PATCH, "/DocumentReference/{id}"),)),
    Case("fhir-docref-conditional-patch", _conditional_delete, ((A.DOCUMENT_DELETE, S),),
         ((PATCH, "/DocumentReference"),)),
    Case("fhir-list-search", _search_lists, ((A.SUBMISSION_SEARCH, S),), ((GET, "/List"),)),
    Case("fhir-list-post-search", _post_search_lists, ((A.SUBMISSION_SEARCH, S),),
         ((POST, "/List/_search"),)),
    Case("fhir-list-read", _read_list, ((A.SUBMISSION_SEARCH, S),), ((GET, "/List/{id}"),)),
    Case("fhir-list-vread", _vread("List"), ((A.SUBMISSION_SEARCH, S),),
         ((GET, "/List/{id}/_history/{vid}"),)),
    Case("fhir-binary-read", _binary("doctor", 200), ((A.DOCUMENT_RETRIEVE, S),), ((GET, "/Binary/{id}"),)),
    Case("fhir-binary-read-refused", _binary("doctor2", 404), ((A.ACCESS_REFUSED, R),),
         ((GET, "/Binary/{id}"),)),
    Case("fhir-binary-vread", _vread("Binary"), ((A.DOCUMENT_RETRIEVE, S),),
         ((GET, "/Binary/{id}/_history/{vid}"),)),
    Case("fhir-patient-search", _patient_search, ((A.RECORD_CHECK, S),), ((GET, "/Patient"),)),
    Case("fhir-patient-post-search", _patient_post_search, ((A.RECORD_CHECK, S),),
         ((POST, "/Patient/_search"),)),
    Case("fhir-patient-read", _patient_read, ((A.RECORD_READ, S),), ((GET, "/Patient/{id}"),)),
    Case("fhir-patient-vread", _vread("Patient"), ((A.RECORD_READ, S),),
         ((GET, "/Patient/{id}/_history/{vid}"),)),
    # the patient summary (IPS $summary): one search of the record's facts, naming their documents
    Case("fhir-patient-summary", _get("Patient/{w.pid}/$summary", "doctor", 200), ((A.RECORD_SEARCH, S),),
         ((GET, "/Patient/{id}/$summary"),)),
    Case("fhir-patient-summary-refused", _get("Patient/{w.pid}/$summary", "doctor2", 403),
         ((A.ACCESS_REFUSED, R),), ((GET, "/Patient/{id}/$summary"),)),
    Case("fhir-patient-create", _patient_create, ((A.RECORD_CREATE, S),), ((POST, "/Patient"),)),
    Case("fhir-auditevent-search-patient", _audit_events(None), ((A.AUDIT_READ, S),),
         ((GET, "/AuditEvent"),)),
    Case("fhir-auditevent-search-professional", _audit_events("doctor"), ((A.AUDIT_READ, S),),
         ((GET, "/AuditEvent"),)),
    Case("fhir-auditevent-post-search", _audit_post_search, ((A.AUDIT_READ, S),),
         ((POST, "/AuditEvent/_search"),)),
    Case("fhir-consent-search", _consents, ((A.CONSENT_READ, S),), ((GET, "/Consent"),)),
    # clinical facts (dmp.services.facts): a search of the record, naming the source documents
    *(Case(f"fhir-{t.lower()}-search", _facts(t, False), ((A.RECORD_SEARCH, S),), ((GET, f"/{t}"),))
      for t in FACT_TYPES),
    *(Case(f"fhir-{t.lower()}-post-search", _facts(t, True), ((A.RECORD_SEARCH, S),),
           ((POST, f"/{t}/_search"),)) for t in FACT_TYPES),
    Case("fhir-consent-post-search", _consents_post_search, ((A.CONSENT_READ, S),),
         ((POST, "/Consent/_search"),)),
    # what an unauthorised professional (doctor2) or one who never acted (nurse) gets, and leaves
    Case("fhir-consent-search-professional", _get("Consent", "doctor2", 200, patient="{w.ref}"),
         ((A.CONSENT_READ, S),), ((GET, "/Consent"),)),
    # …the trail of a record they may not open answers as a missing record (no oracle); the
    # attempt is traced for the patient.
    Case("fhir-auditevent-search-other-professional", _get("AuditEvent", "nurse", 404, patient="{w.ref}"),
         ((A.ACCESS_REFUSED, R),), ((GET, "/AuditEvent"),)),
    Case("fhir-auditevent-search-unauthorised", _get("AuditEvent", "doctor2", 404, patient="{w.ref}"),
         ((A.ACCESS_REFUSED, R),), ((GET, "/AuditEvent"),)),
    Case("fhir-patient-read-unauthorised", _get("Patient/{w.pid}", "doctor2", 200), ((A.RECORD_READ, S),),
         ((GET, "/Patient/{id}"),)),
    Case("fhir-list-read-refused", _get("List/{w.list_id}", "doctor2", 404), ((A.ACCESS_REFUSED, R),),
         ((GET, "/List/{id}"),)),
    Case("fhir-consent-create", _block, ((A.CONSENT_CHANGE, S),), ((POST, "/Consent"),)),
    Case("fhir-consent-create-refused", _block_refused, ((A.ACCESS_REFUSED, R),), ((POST, "/Consent"),)),
    Case("fhir-consent-delete", _revoke, ((A.CONSENT_CHANGE, S),), ((DELETE, "/Consent/{id}"),),
         setup=_authorise_setup),
    # ---- patients' portal (holder and representative) ----
    # A record page reads the document list and the synthesis (its facts and last « Synthèse
    # médicale »): two searches of the record, each naming the documents it shows.
    Case("portal-holder-home", _page("/"), ((A.RECORD_SEARCH, S), (A.RECORD_SEARCH, S)),
         setup=_portal_setup("holder")),
    Case("portal-holder-document", _page("/documents/{w.doc_id}"), ((A.DOCUMENT_RETRIEVE, S),),
         setup=_portal_setup("holder")),
    Case("portal-holder-document-read", _page("/documents/{w.doc_id}/lecture"), ((A.DOCUMENT_RETRIEVE, S),),
         setup=_portal_setup("holder")),
    Case("portal-holder-history", _page("/historique"), ((A.AUDIT_READ, S),), setup=_portal_setup("holder")),
    # The history's exports (issue 13): one read of the trail each, filters or not.
    Case("portal-holder-history-csv", _page("/historique/export.csv"), ((A.AUDIT_READ, S),),
         setup=_portal_setup("holder")),
    Case("portal-holder-history-pdf", _page("/historique/export.pdf?type=publication"), ((A.AUDIT_READ, S),),
         setup=_portal_setup("holder")),
    # The holder's notices (break-glass alerts, majority): their own messages, not the record's
    # data, and not traced; the case is here so that a change of that choice is deliberate.
    Case("portal-holder-notifications", _page("/notifications"), (), setup=_portal_setup("holder")),
    Case("portal-representative-home", _page("/"), ((A.RECORD_SEARCH, S), (A.RECORD_SEARCH, S)),
         setup=_portal_setup("representative"), minor=True),
    Case("portal-representative-document", _page("/documents/{w.doc_id}"), ((A.DOCUMENT_RETRIEVE, S),),
         setup=_portal_setup("representative"), minor=True),
    Case("portal-representative-document-read", _page("/documents/{w.doc_id}/lecture"),
         ((A.DOCUMENT_RETRIEVE, S),), setup=_portal_setup("representative"), minor=True),
    Case("portal-representative-history", _page("/historique"), ((A.AUDIT_READ, S),),
         setup=_portal_setup("representative"), minor=True),
    Case("portal-representative-history-csv", _page("/historique/export.csv"), ((A.AUDIT_READ, S),),
         setup=_portal_setup("representative"), minor=True),
    # ---- professionals' portal ----
    Case("portal-pro-record", _page("/pro/patient?ins={w.ident.nir}"),
         ((A.RECORD_SEARCH, S), (A.RECORD_SEARCH, S)), setup=_portal_setup("doctor")),
    Case("portal-pro-analyte", _page("/pro/patient/analyse?ins={w.ident.nir}&analyte=analyte:glucose"),
         ((A.RECORD_SEARCH, S),), setup=_portal_setup("doctor")),
    Case("portal-pro-analyte-refused",
         _page("/pro/patient/analyse?ins={w.ident.nir}&analyte=analyte:glucose", 403),
         ((A.ACCESS_REFUSED, R),), setup=_portal_setup("doctor2")),
    Case("portal-holder-analyte", _page("/analyse?analyte=analyte:glucose"), ((A.RECORD_SEARCH, S),),
         setup=_portal_setup("holder")),
    Case("portal-pro-record-refused", _page("/pro/patient?ins={w.ident.nir}", 403), ((A.ACCESS_REFUSED, R),),
         setup=_portal_setup("doctor2")),
    Case("portal-pro-attest", _pro_attest, ((A.ACCESS_REFUSED, R), (A.CONSENT_CHANGE, S)),
         setup=_portal_setup("doctor2")),
    Case("portal-pro-document", _page("/pro/documents/{w.doc_id}"), ((A.DOCUMENT_RETRIEVE, S),),
         setup=_portal_setup("doctor")),
    Case("portal-pro-document-refused", _page("/pro/documents/{w.doc_id}", 404), ((A.ACCESS_REFUSED, R),),
         setup=_portal_setup("doctor2")),
    Case("portal-pro-document-read", _page("/pro/documents/{w.doc_id}/lecture"), ((A.DOCUMENT_RETRIEVE, S),),
         setup=_portal_setup("doctor")),
    Case("portal-pro-document-read-refused", _page("/pro/documents/{w.doc_id}/lecture", 404),
         ((A.ACCESS_REFUSED, R),), setup=_portal_setup("doctor2")),
    # ---- desk and operator commands ----
    Case("cli-record-create", _cli_create, ((A.RECORD_CREATE, S),)),
    Case("cli-record-close", _cli_close, ((A.RECORD_CLOSE, S),)),
    Case("cli-record-reactivate", _cli_reactivate, ((A.RECORD_REACTIVATE, S),), setup=_cli_close),
    Case("cli-add-representative", _cli_add_rep, ((A.REPRESENTATIVE_ADD, S),), minor=True),
    Case("cli-remove-representative", _cli_remove_rep, ((A.REPRESENTATIVE_REMOVE, S),), setup=_cli_add_rep,
         minor=True),
    Case("cli-remove-not-a-representative", lambda w: _cli_remove_rep(w, "inconnu@exemple.fr", 1), (),
         minor=True),
    Case("cli-majority-check", _cli_majority, ((A.REPRESENTATIVE_END_AT_MAJORITY, S),), minor=True),
    Case("cli-audit-history", _cli_history, ((A.AUDIT_READ, S),)),
    Case("cli-audit-export", _cli_export, ((A.AUDIT_READ, S),)),
    Case("cli-activation-code", _cli_activation_code, ()),  # the account, not the record's data
]

# Routes that reveal no record data (capabilities, discovery) or only answer errors.
EXEMPT = {
    (GET, "/metadata"),
    (GET, "/.well-known/smart-configuration"),
    *((m, "/{rtype}") for m in (GET, POST, "PUT", PATCH, DELETE)),
    *((m, "/{rtype}/{id}") for m in (GET, POST, "PUT", PATCH, DELETE)),
}


def test_every_fhir_route_is_in_the_matrix() -> None:
    served = {
        (method, route.path)
        for route in fhir_routes.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    covered = {r for case in CASES for r in case.routes}
    assert covered <= served, covered - served  # a case names a route that no longer exists
    assert served - EXEMPT - covered == set(), "route(s) without a case in the trail matrix"
    assert served >= EXEMPT, EXEMPT - served


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_trail_matrix(portal: Portal, tmp_path: Path, case: Case) -> None:
    if case.id == "cli-majority-check":
        today = portal.clock.now.date()
        born = date(today.year - 19, 1, 1)
        w = _world(portal, tmp_path, born)
        # A representative declared while the holder was a minor: straight into the table.
        as_representative(w.api, str(w.pid))
    else:
        w = _world(portal, tmp_path, date(2016, 4, 12) if case.minor else date(1980, 5, 17))
    if case.setup is not None:
        case.setup(w)
    before = {w.pid: len(_entries(w, w.pid))}
    target = case.run(w) or w.pid
    appended = _entries(w, target)[before.get(target, 0):]
    assert appended == [(str(a), o) for a, o in case.expected]
    if target != w.pid:  # a call on another record leaves the seeded one alone
        assert len(_entries(w, w.pid)) == before[w.pid]



def test_the_operator_reading_the_trail_is_named_as_such(portal: Portal, tmp_path: Path) -> None:
    w = _world(portal, tmp_path)
    w.cli("audit", "history", w.ref, "--agent", "Agent SÉCURITÉ")
    assert w.cli("audit", "history", w.ref).splitlines()[0].endswith(
        "Agent SÉCURITÉ (exploitation du service DMP) a consulté l'historique des accès"
    )
