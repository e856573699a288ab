"""The professionals' space (``/pro``): search a patient by INS, list and open documents.

The professional's Actor is the one an API token carries (AU-05); every read goes through
``search_documents`` / ``documents.retrieve``, so the access policy decides as for the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service
from dmp.accounts.service import Account
from dmp.domain.ins import SYSTEM_NIA, SYSTEM_NIR, Ins, parse_ins
from dmp.errors import DmpError
from dmp.policy import record_access
from dmp.services import consents, records
from dmp.services.consents import ConsentKind
from dmp.web import auth_pages
from dmp.web.common import PRO_SPACE, Ctx, form_handler, page_handler
from dmp.web.documents import download, list_documents, offset_param

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


def patient_page(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    raw = ctx.request.query_params.get("ins", "")
    if not raw.strip():
        return ctx.render(
            "pro_home.html",
            status=400,
            title="Rechercher un patient",
            ins="",
            errors=["Saisissez l'INS (NIR ou NIA) du patient."],
        )
    try:
        ins = _parse(raw, ctx.rt.settings.test_instance)
    except DmpError as err:
        return ctx.render(
            "pro_home.html", status=400, title="Rechercher un patient", ins=raw[:40], errors=[err.message]
        )
    actor = service.actor_for(acc)
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return ctx.render(
            "pro_home.html",
            status=404,
            title="Rechercher un patient",
            ins=ins.value,
            errors=["Aucun DMP n'existe pour cet INS."],
        )
    holder: dict[str, Any] = {
        "name": service.patient_display_name(row),
        "birth_date": row.birth_date,
        "ins": ins.value,
    }
    if row.record_status != "open":
        return ctx.render(
            "pro_patient.html",
            status=409,
            title="Dossier du patient",
            holder=holder,
            page=None,
            attest=False,
            errors=[f"Ce DMP est fermé depuis le {row.closed_at:%d/%m/%Y}."],
        )
    decision = record_access(actor, consents.facts(ctx.conn, row)).decision
    if not decision.permitted:
        return ctx.render(
            "pro_patient.html",
            status=403,
            title="Dossier du patient",
            holder=holder,
            page=None,
            attest=decision.rule_id == "AC-01.not-authorised",
            errors=[f"Accès refusé : {decision.reason}."],
        )
    try:
        page = list_documents(
            ctx,
            actor,
            [("patient.identifier", f"{ins.system}|{ins.value}"), ("status", "current")],
            offset_param(ctx),
        )
    except DmpError as err:
        return ctx.render(
            "pro_patient.html",
            status=err.status,
            title="Dossier du patient",
            holder=holder,
            page=None,
            attest=False,
            errors=[err.message],
        )
    return ctx.render(
        "pro_patient.html",
        title="Dossier du patient",
        holder=holder,
        page=page,
        attest=False,
        ins_query=quote(ins.value),
    )


def attest(ctx: Ctx, form: dict[str, str]) -> Response:
    """« Le patient m'a autorisé » (AC-02), through the consent service: the policy decides."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    try:
        ins = _parse(form.get("ins", ""), ctx.rt.settings.test_instance)
    except DmpError as err:
        return ctx.render(
            "pro_home.html", status=400, title="Rechercher un patient", ins="", errors=[err.message]
        )
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return ctx.render(
            "pro_home.html",
            status=404,
            title="Rechercher un patient",
            ins=ins.value,
            errors=["Aucun DMP n'existe pour cet INS."],
        )
    back = SPACE.url("/patient") + "?ins=" + quote(ins.value)
    if form.get("atteste") != "oui":
        return ctx.redirect(back)
    actor = service.actor_for(acc)
    try:
        consents.add(
            ctx.conn, actor, consents.facts(ctx.conn, row), ConsentKind.AUTHORISATION, actor.id, True, ctx.now
        )
    except DmpError as err:
        return ctx.error_page(err.status, "Attestation refusée", err.message)
    return ctx.redirect(back)


def document_download(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    return download(ctx, service.actor_for(acc), ctx.request.path_params["id"])


def routes() -> list[Route]:
    get, post = page_handler, form_handler
    return [
        Route("/pro", get(SPACE, home), methods=["GET"]),
        Route("/pro/", get(SPACE, home), methods=["GET"]),
        Route("/pro/patient", get(SPACE, patient_page), methods=["GET"]),
        Route("/pro/patient/autorisation", post(SPACE, attest), methods=["POST"]),
        Route("/pro/documents/{id}", get(SPACE, document_download), methods=["GET"]),
        *auth_pages.routes(SPACE, after_login),
    ]
