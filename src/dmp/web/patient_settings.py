"""The patient's other self-service pages (issue 13): masking documents from professionals, alert
preferences, closing the record online. Each change goes through its service, which asks the
policy and traces; nothing here decides who may do what.
"""

from __future__ import annotations

from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.domain.actor import Actor
from dmp.errors import DmpError
from dmp.outbox import SMS
from dmp.services import alerts, documents, record_closure
from dmp.web.common import Ctx, Space, page_handler
from dmp.web.documents import NOT_VISIBLE, DocumentLine, list_documents, offset_param
from dmp.web.self_service import Consulted, on_record_get, on_record_post

# What « masqué » means, per DMP_MASKING_TRANSPARENCY (docs/access-policy.md, AC-08 / AC-09).
MASKING_MEANS = {
    "hidden": "Les professionnels à qui il est masqué ne voient pas le document et ne savent pas "
    "qu'un document leur est masqué.",
    "count": "Les professionnels à qui il est masqué ne voient pas le document, mais sont informés "
    "du nombre de documents qui leur sont masqués.",
    "category": "Les professionnels à qui il est masqué ne voient pas le document, mais sont "
    "informés du nombre et de la catégorie (compte rendu, biologie…) des documents masqués.",
}
MASKING_STILL_SEE = (
    "Restent autorisés à le voir : son auteur, votre médecin traitant, les administrateurs de votre "
    "dossier et, si vous l'avez accepté dans « Qui a accès », les professionnels qui accèdent à votre "
    "dossier en urgence. Vous le voyez toujours."
)
REACTIVATION = (
    "Pour réactiver votre dossier, rendez-vous à l'accueil de votre caisse d'assurance maladie avec "
    "une pièce d'identité : la réactivation se fait à votre demande, après vérification de votre "
    "identité. Un dossier fermé ne permet plus aucune connexion en ligne à son contenu."
)
CLOSURE_REASON_MAX = 500


# ---- hub -------------------------------------------------------------------------------------


def hub(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    return ctx.render("self_service.html", title="Gérer mon dossier", nav_current="gerer")


# ---- masking (AC-07) -------------------------------------------------------------------------


def masking_list(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    page = list_documents(ctx, actor, [("patient", f"Patient/{pid}")], offset_param(ctx))
    states = documents.mask_states(ctx.conn, ctx.rt, actor, pid, [ln.id for ln in page.lines])
    done = ctx.request.query_params.get("fait", "")
    notice = {
        "masque": "Le document est masqué aux professionnels.",
        "demasque": "Le document n'est plus masqué.",
    }.get(done)
    return ctx.render(
        "masking.html",
        title="Masquer des documents",
        nav_current="masquage",
        page=page,
        states=states,
        means=_masking_means(ctx),
        still_see=MASKING_STILL_SEE,
        notice=notice,
    )


def _masking_means(ctx: Ctx) -> str:
    return MASKING_MEANS.get(ctx.rt.settings.masking_transparency, MASKING_MEANS["hidden"])


def _doc_id(ctx: Ctx) -> UUID | None:
    try:
        return UUID(ctx.request.path_params["id"])
    except ValueError:
        return None


def masking_confirm(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    """The confirmation page: only for a document the person may see (same 404 otherwise)."""
    doc_id = _doc_id(ctx)
    line = _visible_line(ctx, actor, pid, doc_id) if doc_id is not None else None
    if line is None or doc_id is None:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    state = documents.mask_states(ctx.conn, ctx.rt, actor, pid, [doc_id]).get(doc_id)
    masked = state is not None and state.masked
    return ctx.render(
        "masking_confirm.html",
        title="Ne plus masquer ce document" if masked else "Masquer ce document",
        nav_current="masquage",
        line=line,
        masked=masked,
        may_change=state is not None and state.may_change,
        means=_masking_means(ctx),
        still_see=MASKING_STILL_SEE,
    )


def _visible_line(ctx: Ctx, actor: Actor, pid: UUID, doc_id: UUID) -> DocumentLine | None:
    """The document's line if ``actor`` may see it: searched by id through the policy's filter."""
    page = list_documents(ctx, actor, [("patient", f"Patient/{pid}"), ("_id", str(doc_id))], 0)
    return page.lines[0] if page.lines else None


def masking_post(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
    """MASQUE_PS set or cleared through ``documents.set_masked`` (the FHIR PATCH path)."""
    doc_id = _doc_id(ctx)
    choice = form.get("masquer", "")
    if doc_id is None or choice not in ("oui", "non"):
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    documents.set_masked(ctx.conn, ctx.rt, actor, doc_id, choice == "oui")
    return ctx.redirect("/masquage?fait=" + ("masque" if choice == "oui" else "demasque"))


def masking_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:
        return ctx.error_page(404, "Document introuvable", NOT_VISIBLE)
    if err.status == 403:
        return ctx.error_page(403, "Action refusée", f"Masquage impossible : {err.message}.")
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", err.message)
    return None


# ---- alert preferences (LC-16; docs/alerts.md) -------------------------------------------------


def _alerts_page(
    ctx: Ctx, pid: UUID, *, status: int = 200, notice: str | None = None, field_error: str | None = None
) -> Response:
    contact = alerts.channel_of(ctx.conn, pid)
    channel = None
    if contact is not None:
        channel = ("SMS au " if contact[0] == SMS else "courriel à ") + contact[1]
    return ctx.render(
        "alerts.html",
        status=status,
        title="Mes alertes",
        nav_current="alertes",
        channel=channel,
        new_documents=alerts.wants_new_document_alerts(ctx.conn, pid),
        notice=notice,
        field_error=field_error,
        errors=[field_error] if field_error else [],
    )


def alerts_get(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    return _alerts_page(ctx, pid)


def alerts_post(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
    choice = form.get("nouveaux_documents", "")
    if choice not in ("oui", "non"):
        return _alerts_page(ctx, pid, status=400, field_error="Choisissez « oui » ou « non ».")
    alerts.set_new_document_alerts(ctx.conn, pid, choice == "oui")
    return _alerts_page(ctx, pid, notice="Vos préférences d'alerte sont enregistrées.")


# ---- closure (LC-10) ---------------------------------------------------------------------------


def closure_get(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    return ctx.render(
        "closure.html", title="Fermer mon dossier", values={}, field_errors={},
        may_close=record_closure.may_close(ctx.conn, ctx.rt, actor, pid),
    )


def closure_post(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
    reason = " ".join(form.get("motif", "").split())
    errors: dict[str, str] = {}
    if form.get("confirmation") != "oui":
        errors["confirmation"] = "Cochez la case pour confirmer que vous voulez fermer votre dossier."
    if len(reason) > CLOSURE_REASON_MAX:
        errors["motif"] = f"Le motif ne doit pas dépasser {CLOSURE_REASON_MAX} caractères."
    if errors:
        return ctx.render(
            "closure.html", status=400, title="Fermer mon dossier",
            values={"motif": form.get("motif", "")}, field_errors=errors, errors=list(errors.values()),
            may_close=True,
        )
    detail = "à la demande du titulaire, en ligne" + (f" : {reason}" if reason else "")
    record_closure.close_at_holder_request(ctx.conn, ctx.rt, actor, pid, detail)
    return ctx.render("message.html", title="Votre dossier est fermé", notice=REACTIVATION)


def closure_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", f"{err.message} {REACTIVATION}")
    if err.status == 403:
        return ctx.error_page(403, "Action refusée", f"Vous ne pouvez pas fermer ce dossier : {err.message}.")
    return None


def reactivation(ctx: Ctx) -> Response:
    """Public explanation: a closed record gives no online access, so nobody is logged in to it."""
    return ctx.render("message.html", title="Réactiver mon dossier", notice=REACTIVATION)


def routes(space: Space, consulted: Consulted) -> list[Route]:
    """The pages, for the record ``consulted`` finds (the patient's own, or a represented minor's)."""
    get, post = on_record_get(space, consulted, None), on_record_post(space, consulted, None)
    mget = on_record_get(space, consulted, masking_error)
    mpost = on_record_post(space, consulted, masking_error)
    cget = on_record_get(space, consulted, closure_error)
    cpost = on_record_post(space, consulted, closure_error)
    return [
        Route("/gerer", get(hub), methods=["GET"]),
        Route("/masquage", mget(masking_list), methods=["GET"]),
        Route("/masquage/{id}", mget(masking_confirm), methods=["GET"]),
        Route("/masquage/{id}", mpost(masking_post), methods=["POST"]),
        Route("/alertes", get(alerts_get), methods=["GET"]),
        Route("/alertes", post(alerts_post), methods=["POST"]),
        Route("/fermeture", cget(closure_get), methods=["GET"]),
        Route("/fermeture", cpost(closure_post), methods=["POST"]),
        Route("/reactivation", page_handler(space, reactivation), methods=["GET"]),
    ]
