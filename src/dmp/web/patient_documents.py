"""The patient adds their own documents and states their choices (issue 13, patient space).

« Ajouter un document »: a PDF, a JPEG or PNG image or a plain text, with its type among the
patient's own (DOCPAT*, EXPPAT*: « Directives anticipées » among them) and a date. « Mes choix »:
the organ donation position, the trusted person and the people to contact in an emergency, kept
as a small patient-authored FHIR document of type EXPPAT_1 (ADR 0019). Both become the
ProvideRequest of ITI-65 (``fhir.portal_upload``) and go through ``services.publish.publish``:
the same checks, policy (``FEED.patient``) and trail as the API; nothing here decides who may do
what. Every error is shown next to its field, the input kept (except the file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.fhir import patient_choices as pc
from dmp.fhir.portal_upload import FHIR_JSON, Upload, patient_author, provide_request, sniff_patient_mime
from dmp.outbox.templates import PARIS
from dmp.services import blob_hygiene, records
from dmp.services import documents as docs
from dmp.services import publish as publishing
from dmp.terminology import Concept, valueset
from dmp.web.common import Ctx, Space, handle
from dmp.web.documents import list_documents
from dmp.web.forms import french_date
from dmp.web.self_service import Consulted, on_record_get, on_record_post
from dmp.web.upload_form import FORM_MARGIN, read_upload, too_large

ADD_PATH = "/mes-documents/ajouter"
CHOICES_PATH = "/mes-choix"
TITLE_MAX = 250
NAME_MAX = 120
# The patient's own types (JDV_J66, policy group PATIENT_EXPRESSION), the profile Mon espace santé
# builds itself (DOCPAT08) left out.
PATIENT_TYPES = ("EXPPAT_3", "EXPPAT_1", "EXPPAT_2", *(f"DOCPAT0{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9)))
FIELDS = ("type", "titre", "date_document")
CONTACTS = 2  # people to contact in an emergency, on the form
_PHONE = re.compile(r"\+?[0-9 .()-]{6,25}")


def _type_options() -> list[tuple[str, str]]:
    out = []
    for code in PATIENT_TYPES:
        found = valueset("J66").lookup(code)
        if found:
            out.append((code, found[0].display))
    return out


def _concept(vs: str, code: str) -> Concept | None:
    found = valueset(vs).lookup(code)
    return found[0] if found else None


def _record_ins(ctx: Ctx, pid: UUID) -> tuple[str, str]:
    row = records.get(ctx.conn, pid)
    if row is None:
        raise DmpError("NOT_FOUND")
    return f"urn:oid:{row.ins_oid}", str(row.ins_value)


def _author_name(ctx: Ctx) -> str:
    acc = ctx.full_account()
    return acc.display_name if acc is not None else "Patient"


def _publish(
    ctx: Ctx,
    actor: Actor,
    pid: UUID,
    tracked: blob_hygiene.TrackedBlobs,
    build: Callable[[str, str], Upload],
) -> None:
    """The upload ``build`` makes for the record's INS, published through ITI-65's use case."""
    system, value = _record_ins(ctx, pid)
    settings = ctx.rt.settings
    req = provide_request(
        build(system, value), system, value, ctx.now,
        max_document_bytes=settings.max_document_bytes, allow_test=settings.test_instance,
    )
    publishing.publish(ctx.conn, replace(ctx.rt, blobs=tracked), actor, req, ctx.now)


def _upload(  # noqa: PLR0913  (the form's values, one by one)
    content: bytes, mime: str, type_code: str, title: str, when: date, author: Any,
    replaces: str | None = None,
) -> Upload:
    kind = _concept("J66", type_code)
    facility, practice = _concept("J61", "EXP_PATIENT"), _concept("J04", "EXP_PATIENT")
    klass = _concept("J57", "90")  # « Autres documents déposés par le patient »
    if kind is None or facility is None or practice is None or klass is None:
        raise RuntimeError("patient document codes missing from the value sets")
    return Upload(
        content=content, mime_type=mime, type_concept=kind, class_concept=klass, facility=facility,
        practice=practice, title=title, act_time=datetime.combine(when, time(12), PARIS), author=author,
        masked=False, invisible_to_patient=False, replaces=replaces,
    )


async def _multipart_endpoint(
    request: Request,
    space: Space,
    consulted: Consulted,
    work: Callable[[Ctx, Actor, UUID, dict[str, str], bytes | None, blob_hygiene.TrackedBlobs], Response],
    on_error: Callable[[Ctx, DmpError, dict[str, str]], Response | None],
) -> Response:
    """A multipart form about the record, bounded; CSRF first, then the record, then ``work``;
    the blobs of a rolled-back publication removed."""
    rt = request.app.state.web.runtime
    read = await read_upload(request, rt.settings.max_document_bytes + FORM_MARGIN, FIELDS)
    if read is None:
        return too_large(rt.settings.max_document_bytes)
    form, file = read
    tracked = blob_hygiene.TrackedBlobs(rt.blobs)

    def run(ctx: Ctx) -> Response:
        ctx.require_csrf(form)
        found = consulted(ctx)
        return found if isinstance(found, Response) else work(ctx, found[1], found[2], form, file, tracked)

    response = await handle(request, space, run, lambda ctx, err: on_error(ctx, err, form))
    if tracked.written and response.status_code != 303:  # rolled back: no row names them
        await run_in_threadpool(blob_hygiene.discard_after_rollback, rt, list(tracked.written))
    return response


# ---- « Ajouter un document » -----------------------------------------------------------------


def _add_page(ctx: Ctx, form: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    today = f"{ctx.now.astimezone(PARIS):%d/%m/%Y}"
    return ctx.render(
        "patient_add_document.html",
        status=status,
        title="Ajouter un document",
        nav_current="gerer",
        form={"date_document": today, **{k: v for k, v in form.items() if v and k in FIELDS}},
        field_errors=errors,
        types=_type_options(),
        max_kb=ctx.rt.settings.max_document_bytes // 1024,
    )


def add_form(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    return _add_page(ctx, {}, {})


def _check(
    ctx: Ctx, form: dict[str, str], file: bytes | None
) -> tuple[str | None, date | None, dict[str, str]]:
    errors: dict[str, str] = {}
    limit = ctx.rt.settings.max_document_bytes
    mime = sniff_patient_mime(file) if file else None
    if not file:
        errors["fichier"] = "Choisissez le fichier à ajouter (PDF, image JPEG ou PNG, ou texte)."
    elif len(file) > limit:
        errors["fichier"] = f"Le fichier dépasse la taille maximale ({limit // 1024} Ko)."
    elif mime is None:
        errors["fichier"] = (
            "Format non accepté : un PDF, une image JPEG ou PNG, ou un texte brut est attendu."
        )
    if form.get("type", "") not in PATIENT_TYPES:
        errors["type"] = "Choisissez le type de document dans la liste."
    title = " ".join(form.get("titre", "").split())
    if not title or len(title) > TITLE_MAX:
        errors["titre"] = f"Donnez un titre au document ({TITLE_MAX} caractères au plus)."
    when = french_date(form.get("date_document", "").strip())
    if when is None or when > ctx.now.astimezone(PARIS).date() or when.year < 1900:
        errors["date_document"] = "Saisissez la date du document (jj/mm/aaaa), pas dans le futur."
        when = None
    return mime, when, errors


def add_post(
    ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str], file: bytes | None,
    tracked: blob_hygiene.TrackedBlobs,
) -> Response:
    mime, when, errors = _check(ctx, form, file)
    if errors or file is None or mime is None or when is None:
        return _add_page(ctx, form, errors, 400)
    title = " ".join(form["titre"].split())
    name = _author_name(ctx)
    _publish(ctx, actor, pid, tracked, lambda system, value: _upload(
        file, mime, form["type"], title, when, patient_author(system, value, name)))
    return ctx.redirect(f"{ADD_PATH}/fait")


def add_error(ctx: Ctx, err: DmpError, form: dict[str, str]) -> Response | None:
    if err.status in (403, 404) or err.code == "RECORD_CLOSED":
        return ctx.error_page(err.status, "Action refusée", f"Le document n'est pas ajouté : {err.message}.")
    faults = err.issues or (err,)
    return _add_page(ctx, form, {"fichier": " ".join(f.message for f in faults)}, err.status)


def add_done(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    return ctx.render(
        "patient_document_added.html",
        title="Document ajouté",
        nav_current="gerer",
        notice="Votre document est ajouté à votre dossier ; son ajout est tracé dans l'historique.",
    )


# ---- « Mes choix » ---------------------------------------------------------------------------


def _current_choices(ctx: Ctx, actor: Actor, pid: UUID) -> tuple[str | None, pc.Choices | None]:
    """The last choices document the person sees (its id and content), if any."""
    params = [("patient", f"Patient/{pid}"), ("status", "current")]
    page = list_documents(ctx, actor, params, 0)
    found = next((ln for ln in page.lines if ln.title == pc.TITLE and ln.mime_type == FHIR_JSON), None)
    if found is None:
        return None, None
    content = docs.retrieve(ctx.conn, ctx.rt, actor, found.id)
    return str(found.id), pc.choices_of(content.data)


def _form_of(c: pc.Choices | None) -> dict[str, str]:
    if c is None:
        return {"don": pc.UNDECIDED}
    out = {"don": c.donation}
    if c.trusted:
        out |= {"confiance_nom": c.trusted.name, "confiance_lien": c.trusted.relationship,
                "confiance_tel": c.trusted.phone}
    for i, p in enumerate(c.contacts[:CONTACTS], 1):
        out |= {f"urgence{i}_nom": p.name, f"urgence{i}_lien": p.relationship, f"urgence{i}_tel": p.phone}
    return out


def _choices_page(ctx: Ctx, form: dict[str, str], errors: dict[str, str], status: int = 200,
                  notice: str | None = None) -> Response:
    return ctx.render(
        "patient_choices.html",
        status=status,
        title="Mes choix",
        nav_current="gerer",
        form=form,
        field_errors=errors,
        donation=[(pc.DONOR, "Je suis donneur"), (pc.REFUSES, "Je refuse"),
                  (pc.UNDECIDED, "Je ne me prononce pas")],
        contacts=range(1, CONTACTS + 1),
        notice=notice,
    )


def choices_get(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    _, current = _current_choices(ctx, actor, pid)
    saved = ctx.request.query_params.get("fait")
    notice = "Vos choix sont enregistrés dans votre dossier." if saved else None
    return _choices_page(ctx, _form_of(current), {}, notice=notice)


def _person(form: dict[str, str], prefix: str, errors: dict[str, str]) -> pc.Person | None:
    name, lien, tel = (" ".join(form.get(f"{prefix}_{k}", "").split()) for k in ("nom", "lien", "tel"))
    if not (name or lien or tel):
        return None
    if not name or len(name) > NAME_MAX:
        errors[f"{prefix}_nom"] = f"Indiquez le nom et le prénom ({NAME_MAX} caractères au plus)."
    if len(lien) > NAME_MAX:
        errors[f"{prefix}_lien"] = f"Le lien tient en {NAME_MAX} caractères au plus."
    if tel and not _PHONE.fullmatch(tel):
        errors[f"{prefix}_tel"] = "Saisissez un numéro de téléphone (chiffres, espaces, + au début)."
    return pc.Person(name, lien, tel)


def _parse_choices(form: dict[str, str]) -> tuple[pc.Choices, dict[str, str]]:
    errors: dict[str, str] = {}
    donation = form.get("don", "")
    if donation not in pc.DONATION_WORDS:
        errors["don"] = "Choisissez votre position sur le don d'organes."
    trusted = _person(form, "confiance", errors)
    contacts = tuple(p for i in range(1, CONTACTS + 1) if (p := _person(form, f"urgence{i}", errors)))
    return pc.Choices(donation, trusted, contacts), errors


def choices_post(
    ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str], tracked: blob_hygiene.TrackedBlobs
) -> Response:
    choices, errors = _parse_choices(form)
    if errors:
        return _choices_page(ctx, form, errors, 400)
    previous, _ = _current_choices(ctx, actor, pid)
    name = _author_name(ctx)
    replaces = f"DocumentReference/{previous}" if previous else None
    today = ctx.now.astimezone(PARIS).date()

    def build(system: str, value: str) -> Upload:
        content = pc.choices_document(choices, system, value, name, ctx.now)
        return _upload(content, FHIR_JSON, "EXPPAT_1", pc.TITLE, today, patient_author(system, value, name),
                       replaces)

    _publish(ctx, actor, pid, tracked, build)
    return ctx.redirect(f"{CHOICES_PATH}?fait=1")


def choices_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status in (403, 404) or err.code == "RECORD_CLOSED":
        message = f"Vos choix ne sont pas enregistrés : {err.message}."
        return ctx.error_page(err.status, "Action refusée", message)
    return None


def routes(space: Space, consulted: Consulted) -> list[Route]:
    """The pages, for the record ``consulted`` finds (the patient's own, or a represented minor's)."""

    async def add_endpoint(request: Request) -> Response:
        return await _multipart_endpoint(request, space, consulted, add_post, add_error)

    async def choices_endpoint(request: Request) -> Response:
        rt = request.app.state.web.runtime
        tracked = blob_hygiene.TrackedBlobs(rt.blobs)
        post = on_record_post(space, consulted, choices_error)

        def work(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
            return choices_post(ctx, actor, pid, form, tracked)

        response = await post(work)(request)
        if tracked.written and response.status_code != 303:  # rolled back: no row names them
            await run_in_threadpool(blob_hygiene.discard_after_rollback, rt, list(tracked.written))
        return response

    get = on_record_get(space, consulted, None)
    cget = on_record_get(space, consulted, choices_error)
    return [
        Route(ADD_PATH, get(add_form), methods=["GET"]),
        Route(ADD_PATH, add_endpoint, methods=["POST"]),
        Route(f"{ADD_PATH}/fait", get(add_done), methods=["GET"]),
        Route(CHOICES_PATH, cget(choices_get), methods=["GET"]),
        Route(CHOICES_PATH, choices_endpoint, methods=["POST"]),
    ]
