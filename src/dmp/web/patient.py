"""The patients' space (``/``): Mon DMP, documents, notifications, records of represented minors,
majority confirmation, online activation request."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service, sessions
from dmp.accounts.service import PATIENT, REPRESENTATIVE, Account
from dmp.domain.actor import Actor
from dmp.domain.identity import normalize_trait
from dmp.errors import DmpError
from dmp.services import notifications, records, synthesis
from dmp.web import (
    auth_pages,
    export,
    patient_access,
    patient_documents,
    patient_history,
    patient_settings,
    whats_new,
)
from dmp.web.common import PERSON_SPACE, Ctx, form_handler, lock_message, page_handler
from dmp.web.documents import (
    download,
    download_error,
    list_documents,
    offset_param,
    piece,
    read,
    search_words,
)

SPACE = PERSON_SPACE


def after_login(ctx: Ctx, acc: Account) -> str:
    """Majority check at login; a representative of several minors chooses a record."""
    if acc.kind == PATIENT and acc.patient_id is not None:
        service.check_majority(ctx.conn, acc.patient_id, ctx.now)
        fresh = service.get(ctx.conn, acc.id)
        if fresh is not None and fresh.majority_confirmation:
            return "/majorite"
        return "/"
    children = _children(ctx, acc)
    if len(children) == 1 and ctx.session is not None:
        ctx.session.patient_id = children[0].patient_id
        sessions.save(ctx.conn, ctx.session)
        return "/"
    return "/dossiers"


def _children(ctx: Ctx, acc: Account) -> list[service.RepresentedRecord]:
    for child in service.represented_records(ctx.conn, acc.id):
        service.check_majority(ctx.conn, child.patient_id, ctx.now)
    return service.represented_records(ctx.conn, acc.id)


def _record(ctx: Ctx, acc: Account) -> tuple[Actor, UUID] | Response:
    """The actor and the record being consulted, or the page to go to instead."""
    if acc.kind == PATIENT and acc.patient_id is not None:
        if acc.majority_confirmation:
            return ctx.redirect("/majorite")
        return ctx.actor(acc), acc.patient_id
    if acc.kind == REPRESENTATIVE and ctx.session is not None:
        pid = ctx.session.patient_id
        if pid is not None:
            service.check_majority(ctx.conn, pid, ctx.now)
            if any(c.patient_id == pid for c in service.represented_records(ctx.conn, acc.id)):
                return ctx.actor(acc), pid
        children = _children(ctx, acc)
        if pid is None and len(children) == 1:  # one record only: no choice to make
            ctx.session.patient_id = children[0].patient_id
            sessions.save(ctx.conn, ctx.session)
            return ctx.actor(acc), children[0].patient_id
        ctx.session.patient_id = None
        sessions.save(ctx.conn, ctx.session)
        return ctx.redirect("/dossiers")
    return ctx.error_page(403, "Accès refusé", "Ce compte ne donne accès à aucun dossier.")


def _consulted(ctx: Ctx) -> tuple[Account, Actor, UUID] | Response:
    """The signed-in person, their actor and the record they consult; or the page to go to."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    found = _record(ctx, acc)
    if isinstance(found, Response):
        return found
    return acc, found[0], found[1]


def _holder_name(ctx: Ctx, pid: UUID) -> str:
    row = records.get(ctx.conn, pid)
    return service.patient_display_name(row) if row is not None else ""


def home(ctx: Ctx) -> Response:
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    acc, actor, pid = consulted
    page = list_documents(ctx, actor, [("patient", f"Patient/{pid}")], offset_param(ctx), search_words(ctx))
    unread = notifications.unread_count(ctx.conn, pid)
    return ctx.render(
        "home.html",
        title="Mon DMP",
        page=page,
        news=whats_new.since_last_visit(ctx, actor, pid),
        syn=synthesis.record_synthesis(ctx.conn, ctx.rt, actor, pid, ctx.now),
        holder=_holder_name(ctx, pid),
        representative=acc.kind == REPRESENTATIVE,
        notifications=unread,
        several=acc.kind == REPRESENTATIVE and len(service.represented_records(ctx.conn, acc.id)) > 1,
    )


def record_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", err.message)
    return None


def document_download(ctx: Ctx) -> Response:
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    return download(ctx, consulted[1], ctx.request.path_params["id"])


def export_archive(ctx: Ctx) -> Response:
    """« Tout télécharger » (CS-06): the ZIP of everything the person may see of the record."""
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    return export.archive(ctx, consulted[1], consulted[2])


def export_summary(ctx: Ctx) -> Response:
    """« Résumé imprimable (PDF) » (CS-06)."""
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    return export.summary(ctx, consulted[1], consulted[2])


def document_read(ctx: Ctx) -> Response:
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    raw = ctx.request.path_params["id"]
    return read(ctx, consulted[1], raw, "/documents/" + quote(raw))


def document_piece(ctx: Ctx) -> Response:
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    return piece(ctx, consulted[1], ctx.request.path_params["id"], ctx.request.path_params["key"])


def analyte_page(ctx: Ctx) -> Response:
    """« Courbe » of one analyte of the record: every value the person may see, in one unit."""
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    _, actor, pid = consulted
    key = ctx.request.query_params.get("analyte", "")[:200]
    hist = synthesis.analyte_history(ctx.conn, ctx.rt, actor, pid, key)
    return ctx.render(
        "analyte_history.html",
        title=f"Évolution : {hist.label}" if hist.label else "Évolution d'une analyse",
        hist=hist,
        read_base="/documents/",
        back_url="/",
    )


def notifications_page(ctx: Ctx) -> Response:
    consulted = _consulted(ctx)
    if isinstance(consulted, Response):
        return consulted
    pid = consulted[2]
    items = list(reversed(notifications.list_for(ctx.conn, pid)))
    notifications.mark_all_read(ctx.conn, pid)
    return ctx.render(
        "notifications.html", title="Mes notifications", items=items, holder=_holder_name(ctx, pid)
    )


def records_get(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    if acc.kind != REPRESENTATIVE:
        return ctx.redirect("/")
    return ctx.render("records.html", title="Choisir un dossier", children=_children(ctx, acc))


def records_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = ctx.full_account()
    if acc is None or ctx.session is None:
        return ctx.to_login()
    children = _children(ctx, acc)
    chosen = next((c for c in children if str(c.patient_id) == form.get("dossier")), None)
    if chosen is None:
        return ctx.render(
            "records.html",
            status=400,
            title="Choisir un dossier",
            children=children,
            errors=["Choisissez l'un des dossiers de la liste."],
        )
    ctx.session.patient_id = chosen.patient_id
    sessions.save(ctx.conn, ctx.session)
    return ctx.redirect("/")


def majority_get(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    if not acc.majority_confirmation:
        return ctx.redirect("/")
    return ctx.render(
        "majority.html", title="Vous êtes majeur(e)", grace_days=ctx.rt.settings.majority_grace_days
    )


def majority_post(ctx: Ctx, form: dict[str, str]) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    if form.get("decision") == "fermer":
        if not acc.majority_confirmation:
            return ctx.redirect("/")
        records.refuse_at_majority(ctx.conn, acc.id, ctx.actor(acc), ctx.now)  # LC-08: the record closes
        return ctx.redirect("/")
    if form.get("poursuite") != "oui":
        return ctx.render(
            "majority.html",
            status=400,
            title="Vous êtes majeur(e)",
            grace_days=ctx.rt.settings.majority_grace_days,
            errors=["Cochez la case pour confirmer la poursuite de votre DMP."],
        )
    service.confirm_majority(ctx.conn, acc.id, ctx.now, ctx.actor(acc))
    return ctx.redirect("/")


# ---- online activation request (identity proofing against the record's INS and strict traits) --


def proofing_get(ctx: Ctx) -> Response:
    ctx.ensure_session()
    return ctx.render("proofing.html", title="Recevoir mon code d'activation", values={})


PROOFING_DONE = (
    "Si ces informations correspondent à un DMP dont nous connaissons l'adresse électronique ou le "
    "numéro de mobile, un nouveau code d'activation vient d'y être envoyé. Sinon, rendez-vous à "
    "l'accueil de votre caisse d'assurance maladie avec une pièce d'identité."
)


def proofing_post(ctx: Ctx, form: dict[str, str]) -> Response:
    from dmp.accounts import throttle

    values = {k: form.get(k, "").strip() for k in ("ins", "nom", "prenom", "naissance", "lieu")}
    if not all(values.values()):
        return ctx.render(
            "proofing.html",
            status=400,
            title="Recevoir mon code d'activation",
            values=values,
            errors=["Tous les champs sont obligatoires."],
        )
    addr_key = throttle.key(ctx.keys, "ip", ctx.address)
    id_key = throttle.key(ctx.keys, "proof", "".join(values["ins"].split()).upper())
    until = throttle.any_locked(ctx.conn, [addr_key, id_key], ctx.now)
    if until is not None:
        return ctx.render(
            "proofing.html",
            status=429,
            title="Recevoir mon code d'activation",
            values=values,
            errors=[lock_message(until)],
        )
    pid = _match_identity(ctx, values)
    if pid is None:
        throttle.record_failure(ctx.conn, id_key, throttle.IDENTIFIER, ctx.now)
        throttle.record_failure(ctx.conn, addr_key, throttle.ADDRESS, ctx.now)
    else:
        service.proof_identity(ctx.conn, pid, ctx.now, settings=ctx.rt.settings)
    # The same answer whether or not anything matched or was sent.
    return ctx.render("message.html", title="Demande enregistrée", notice=PROOFING_DONE)


def _match_identity(ctx: Ctx, values: dict[str, str]) -> UUID | None:
    ins = "".join(values["ins"].split()).upper()
    row = records.find_by_ins_value(ctx.conn, ins)
    if row is None:
        return None
    birth = row.birth_date.isoformat()
    ok = (
        normalize_trait(values["nom"]) == normalize_trait(row.birth_family_name)
        and normalize_trait(values["prenom"]) == normalize_trait(row.birth_given_names.split()[0])
        and values["naissance"] == birth
        and values["lieu"].upper() == row.birth_place_insee.upper()
    )
    return row.id if ok else None


def routes() -> list[Route]:
    get, post = page_handler, form_handler
    return [
        Route("/", get(SPACE, home, record_error), methods=["GET"]),
        Route("/documents/{id}", get(SPACE, document_download, download_error), methods=["GET"]),
        Route("/documents/{id}/lecture", get(SPACE, document_read, download_error), methods=["GET"]),
        Route("/documents/{id}/pieces/{key}", get(SPACE, document_piece, download_error), methods=["GET"]),
        Route("/telecharger/archive", get(SPACE, export_archive, export.export_error), methods=["GET"]),
        Route("/telecharger/resume", get(SPACE, export_summary, export.export_error), methods=["GET"]),
        Route("/analyse", get(SPACE, analyte_page, record_error), methods=["GET"]),
        Route("/notifications", get(SPACE, notifications_page), methods=["GET"]),
        Route("/dossiers", get(SPACE, records_get), methods=["GET"]),
        Route("/dossiers", post(SPACE, records_post), methods=["POST"]),
        Route("/majorite", get(SPACE, majority_get), methods=["GET"]),
        Route("/majorite", post(SPACE, majority_post), methods=["POST"]),
        Route("/inscription", get(SPACE, proofing_get), methods=["GET"]),
        Route("/inscription", post(SPACE, proofing_post), methods=["POST"]),
        *patient_history.routes(SPACE, _consulted, _holder_name),
        *patient_access.routes(SPACE, _consulted),
        *patient_settings.routes(SPACE, _consulted),
        *patient_documents.routes(SPACE, _consulted),
        *auth_pages.routes(SPACE, after_login),
    ]
