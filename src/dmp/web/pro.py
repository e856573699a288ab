"""The professionals' space (``/pro``): search a patient by INS, list and open documents.

The professional's Actor is the one an API token carries (AU-05); every read goes through
``search_documents`` / ``documents.retrieve``, so the access policy decides as for the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service
from dmp.accounts.service import Account
from dmp.domain.actor import Actor
from dmp.domain.ins import SYSTEM_NIA, SYSTEM_NIR, Ins, parse_ins
from dmp.errors import DmpError
from dmp.services import records, synthesis
from dmp.web import auth_pages, export, pro_access, pro_find, pro_history, pro_publish
from dmp.web.common import PRO_SPACE, Ctx, page_handler
from dmp.web.documents import (
    download,
    download_error,
    list_documents,
    offset_param,
    piece,
    read,
    search_words,
)

SPACE = PRO_SPACE


def after_login(ctx: Ctx, acc: Account) -> str:
    return SPACE.home


def _parse(raw: str, allow_test: bool) -> Ins:
    value = "".join(raw.split()).upper()
    system = SYSTEM_NIA if value[:1] in ("7", "8") else SYSTEM_NIR
    return parse_ins(system, value, allow_test=allow_test)


def home(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    return ctx.render("pro_home.html", title="Rechercher un patient", ins="")


def _search_form(ctx: Ctx, status: int, ins: str, message: str) -> Response:
    return ctx.render(
        "pro_home.html", status=status, title="Rechercher un patient", ins=ins, errors=[message]
    )


def _holder(row: Any, ins: Ins) -> dict[str, Any]:
    return {"name": service.patient_display_name(row), "birth_date": row.birth_date, "ins": ins.value}


def patient_page(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    raw = ctx.request.query_params.get("ins", "")
    if not raw.strip():
        return _search_form(ctx, 400, "", "Saisissez l'INS (NIR ou NIA) du patient.")
    try:
        ins = _parse(raw, ctx.rt.settings.test_instance)
    except DmpError as err:
        return _search_form(ctx, 400, raw[:40], err.message)
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return _search_form(ctx, 404, ins.value, "Aucun DMP n'existe pour cet INS.")
    # Refusals (policy, closed record) propagate: rolled back, traced, rendered by patient_error.
    actor = pro_access.record_actor(ctx, acc, row.id)
    page = list_documents(
        ctx,
        actor,
        [("patient.identifier", f"{ins.system}|{ins.value}"), ("status", "current")],
        offset_param(ctx),
        search_words(ctx),
    )
    return ctx.render(
        "pro_patient.html",
        title="Dossier du patient",
        holder=_holder(row, ins),
        page=page,
        syn=synthesis.record_synthesis(ctx.conn, ctx.rt, actor, row.id, ctx.now),
        attest=False,
        ins_query=quote(ins.value),
        **pro_access.record_extras(ctx, row.id),
    )


def _exported(ctx: Ctx, produce: Callable[[Ctx, Actor, UUID], Response]) -> Response:
    """An export of the record named by ``?ins=``: a malformed INS, an unknown record and one the
    professional may not read get the same answer (``services.export`` opens it with the policy)."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    try:
        ins = _parse(ctx.request.query_params.get("ins", ""), ctx.rt.settings.test_instance)
    except DmpError:
        return export.not_found(ctx)
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return export.not_found(ctx)
    return produce(ctx, ctx.actor(acc), row.id)


def export_archive(ctx: Ctx) -> Response:
    return _exported(ctx, export.archive)


def export_summary(ctx: Ctx) -> Response:
    return _exported(ctx, export.summary)


def analyte_page(ctx: Ctx) -> Response:
    """« Courbe » of one analyte: every value the professional may see, in one unit."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    try:
        ins = _parse(ctx.request.query_params.get("ins", ""), ctx.rt.settings.test_instance)
    except DmpError as err:
        return _search_form(ctx, 400, "", err.message)
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return _search_form(ctx, 404, ins.value, "Aucun DMP n'existe pour cet INS.")
    key = ctx.request.query_params.get("analyte", "")[:200]
    hist = synthesis.analyte_history(
        ctx.conn, ctx.rt, pro_access.record_actor(ctx, acc, row.id), row.id, key
    )
    return ctx.render(
        "analyte_history.html",
        title=f"Évolution : {hist.label}" if hist.label else "Évolution d'une analyse",
        hist=hist,
        read_base="/pro/documents/",
        back_url="/pro/patient?ins=" + quote(ins.value),
    )


def document_download(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    raw = ctx.request.path_params["id"]
    return download(ctx, pro_access.document_actor(ctx, acc, raw), raw)


def document_read(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    raw = ctx.request.path_params["id"]
    return read(ctx, pro_access.document_actor(ctx, acc, raw), raw, "/pro/documents/" + quote(raw))


def document_piece(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    raw = ctx.request.path_params["id"]
    return piece(ctx, pro_access.document_actor(ctx, acc, raw), raw, ctx.request.path_params["key"])


def routes() -> list[Route]:
    get = page_handler
    return [
        Route("/pro", get(SPACE, home), methods=["GET"]),
        Route("/pro/", get(SPACE, home), methods=["GET"]),
        Route("/pro/patient", get(SPACE, patient_page, pro_access.patient_error), methods=["GET"]),
        Route("/pro/patient/analyse", get(SPACE, analyte_page, pro_access.patient_error), methods=["GET"]),
        *pro_access.routes(),  # refusal page: attestation, emergency access
        *pro_history.routes(),
        *pro_find.routes(),
        *pro_publish.routes(),
        Route("/pro/patient/telecharger/archive", get(SPACE, export_archive, export.export_error),
              methods=["GET"]),
        Route("/pro/patient/telecharger/resume", get(SPACE, export_summary, export.export_error),
              methods=["GET"]),
        Route("/pro/documents/{id}", get(SPACE, document_download, download_error), methods=["GET"]),
        Route("/pro/documents/{id}/lecture", get(SPACE, document_read, download_error), methods=["GET"]),
        Route(
            "/pro/documents/{id}/pieces/{key}", get(SPACE, document_piece, download_error), methods=["GET"]
        ),
        *auth_pages.routes(SPACE, after_login),
    ]
