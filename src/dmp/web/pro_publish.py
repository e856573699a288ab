"""Publish a document (PDF or CDA) from the record page (issue 13, professional space).

A metadata form with the CI-SIS value sets (type JDV_J66, class J57, structure J61, practice
setting J04), the title and the date of the act, masked from professionals at publication
(MASQUE_PS), invisible to the patient pending the consultation d'annonce (INVISIBLE_PATIENT), and
optionally the document it replaces. The upload becomes the ProvideRequest of ITI-65
(``fhir.portal_upload``) and goes through ``services.publish.publish``: the same checks, policy
and trail as the API. Every error is shown next to its field, the input kept.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time
from typing import Any
from urllib.parse import quote
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts.service import Account
from dmp.domain.ins import Ins
from dmp.errors import DmpError
from dmp.fhir.portal_upload import Upload, practitioner_author, provide_request, sniff_mime
from dmp.outbox.templates import PARIS
from dmp.services import blob_hygiene
from dmp.services import publish as publishing
from dmp.terminology import Concept, valueset
from dmp.web.common import PRO_SPACE, Ctx, handle, page_handler
from dmp.web.documents import list_documents
from dmp.web.forms import french_date
from dmp.web.pro_access import named_record, patient_error, record_actor, record_url
from dmp.web.upload_form import FORM_MARGIN, read_upload, too_large

SPACE = PRO_SPACE
PATH = "/pro/patient/publier"
TITLE_MAX = 250
NOT_FOUND = "Ce dossier n'existe pas ou ne vous est pas accessible."
TEXT_FIELDS = (
    "type", "classe", "structure", "cadre", "titre", "date_acte", "remplace", "masque", "invisible",
)
DEFAULTS = {"classe": "10", "structure": "SA07", "cadre": "AMBULATOIRE"}
# Which field a refusal of the publication use case is about.
_FIELD_OF_ERROR = {
    "DOCUMENT_TYPE_MISMATCH": "type", "REPLACED_UNKNOWN": "remplace", "ALREADY_REPLACED": "remplace",
}


def _options(vs: str) -> list[tuple[str, str]]:
    return [(c.code, c.display) for c in valueset(vs)]


def _type_options() -> list[tuple[str, str]]:
    """J66 may hold one code in two systems: the option names both."""
    return [(f"{c.system}|{c.code}", f"{c.display} ({c.code})") for c in valueset("J66")]


def _type_concept(raw: str) -> Concept | None:
    system, _, code = raw.rpartition("|")
    return valueset("J66").get(system, code) if system else None


def _concept(vs: str, code: str) -> Concept | None:
    found = valueset(vs).lookup(code)
    return found[0] if found else None


# ---- the form page -------------------------------------------------------------------------


def _replaceable(ctx: Ctx, acc: Account, ins: Ins, row: Any) -> list[tuple[str, str]]:
    """The current documents this professional sees (opening the record: a refusal propagates)."""
    params = [("patient.identifier", f"{ins.system}|{ins.value}"), ("status", "current")]
    page = list_documents(ctx, record_actor(ctx, acc, row.id), params, 0)
    return [(str(line.id), f"{line.title} — {line.date:%d/%m/%Y}") for line in page.lines]


def _render(
    ctx: Ctx,
    acc: Account,
    ins: Ins,
    row: Any,
    form: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    return ctx.render(
        "pro_publish.html",
        status=status,
        title="Publier un document",
        action=f"{PATH}?ins={quote(ins.value)}",
        record_url=record_url(ins.value),
        form={**_defaults(ctx), **{k: v for k, v in form.items() if v}},
        field_errors=errors,
        max_mb=max(1, ctx.rt.settings.max_document_bytes // (1024 * 1024)),
        types=_type_options(),
        classes=_options("J57"),
        structures=_options("J61"),
        settings_=_options("J04"),
        documents=_replaceable(ctx, acc, ins, row),
    )


def _defaults(ctx: Ctx) -> dict[str, str]:
    return {**DEFAULTS, "date_acte": f"{ctx.now.astimezone(PARIS):%d/%m/%Y}"}


def form_page(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, row = named_record(ctx)
    return _render(ctx, acc, ins, row, {}, {})


def form_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:
        return ctx.error_page(404, "Dossier introuvable", NOT_FOUND)
    return patient_error(ctx, err)


# ---- the upload ----------------------------------------------------------------------------


def _check(ctx: Ctx, form: dict[str, str], file: bytes | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values, or the French error of each wrong field."""
    errors: dict[str, str] = {}
    limit = ctx.rt.settings.max_document_bytes
    mime = sniff_mime(file) if file else None
    if not file:
        errors["fichier"] = "Choisissez le fichier du document (PDF ou CDA)."
    elif len(file) > limit:
        errors["fichier"] = f"Le fichier dépasse la taille maximale ({limit // 1024} Ko)."
    elif mime is None:
        errors["fichier"] = "Format non accepté : un PDF ou un document CDA (XML) est attendu."
    concepts = {
        "type": _type_concept(form.get("type", "")),
        "classe": _concept("J57", form.get("classe", "")),
        "structure": _concept("J61", form.get("structure", "")),
        "cadre": _concept("J04", form.get("cadre", "")),
    }
    for name, text in (("type", "le type de document"), ("classe", "la classe du document"),
                       ("structure", "le type de structure"), ("cadre", "le cadre d'exercice")):
        if concepts[name] is None:
            errors[name] = f"Choisissez {text} dans la liste."
    title = " ".join(form.get("titre", "").split())
    if not title or len(title) > TITLE_MAX:
        errors["titre"] = f"Saisissez le titre du document ({TITLE_MAX} caractères au plus)."
    act = french_date(form.get("date_acte", "").strip())
    if act is None or act > ctx.now.astimezone(PARIS).date() or act.year < 1900:
        errors["date_acte"] = "Saisissez la date de l'acte (jj/mm/aaaa), pas dans le futur."
    replaces = form.get("remplace", "")
    try:
        target = f"DocumentReference/{UUID(replaces)}" if replaces else None
    except ValueError:
        errors["remplace"] = "Choisissez le document remplacé dans la liste."
        target = None
    values = {**concepts, "mime": mime, "title": title, "act": act, "replaces": target}
    return values, errors


def _upload(acc: Account, file: bytes, v: dict[str, Any], form: dict[str, str]) -> Upload:
    return Upload(
        content=file,
        mime_type=v["mime"],
        type_concept=v["type"],
        class_concept=v["classe"],
        facility=v["structure"],
        practice=v["cadre"],
        title=v["title"],
        act_time=datetime.combine(v["act"], time(12), PARIS),
        author=practitioner_author("8" + acc.login, acc.display_name),
        masked=form.get("masque") == "oui",
        invisible_to_patient=form.get("invisible") == "oui",
        replaces=v["replaces"],
    )


def _publish(
    ctx: Ctx, form: dict[str, str], file: bytes | None, tracked: blob_hygiene.TrackedBlobs
) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ctx.require_csrf(form)
    ins, row = named_record(ctx)
    values, errors = _check(ctx, form, file)
    if errors or file is None:
        return _render(ctx, acc, ins, row, form, errors, 400)
    req = provide_request(
        _upload(acc, file, values, form), ins.system, ins.value, ctx.now,
        max_document_bytes=ctx.rt.settings.max_document_bytes, allow_test=ctx.rt.settings.test_instance,
    )
    actor = record_actor(ctx, acc, row.id)
    result = publishing.publish(ctx.conn, replace(ctx.rt, blobs=tracked), actor, req, ctx.now)
    (doc_id,) = result.document_ids
    return ctx.redirect(f"{PATH}/publie?ins={quote(ins.value)}")


def _field_errors(err: DmpError) -> dict[str, str]:
    faults = err.issues or (err,)
    out: dict[str, str] = {}
    for f in faults:
        name = _FIELD_OF_ERROR.get(f.code, "fichier")
        out[name] = (out[name] + " " if name in out else "") + f.message
    return out


async def upload_endpoint(request: Request) -> Response:
    web = request.app.state.web
    rt = web.runtime
    read = await read_upload(request, rt.settings.max_document_bytes + FORM_MARGIN, TEXT_FIELDS)
    if read is None:
        return too_large(rt.settings.max_document_bytes)
    form, file = read
    tracked = blob_hygiene.TrackedBlobs(rt.blobs)

    def on_error(ctx: Ctx, err: DmpError) -> Response | None:
        acc = ctx.full_account()
        if acc is None or err.status in (403, 404) or err.code == "RECORD_CLOSED":
            return form_error(ctx, err)
        ins, row = named_record(ctx)
        return _render(ctx, acc, ins, row, form, _field_errors(err), err.status)

    response = await handle(request, SPACE, lambda ctx: _publish(ctx, form, file, tracked), on_error)
    if tracked.written and response.status_code != 303:  # rolled back: no row names them
        await run_in_threadpool(blob_hygiene.discard_after_rollback, rt, list(tracked.written))
    return response


def published(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, _ = named_record(ctx)
    return ctx.render(
        "pro_published.html",
        title="Document publié",
        notice="Le document est publié dans le DMP du patient ; sa publication est tracée.",
        record_url=record_url(ins.value),
        form_url=f"{PATH}?ins={quote(ins.value)}",
    )


def routes() -> list[Route]:
    return [
        Route(PATH, page_handler(SPACE, form_page, form_error), methods=["GET"]),
        Route(PATH, upload_endpoint, methods=["POST"]),
        Route(f"{PATH}/publie", page_handler(SPACE, published, form_error), methods=["GET"]),
    ]
