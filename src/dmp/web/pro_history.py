"""« Mon historique d'accès à ce dossier » (TR-03): the professional's own trail entries on one
record, through ``trail_read.own_history_page`` (``policy.trail_access``: own actions only, never
an entry naming a document hidden from them; the read itself traced)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from dmp.errors import DmpError
from dmp.services import trail_read
from dmp.web.common import PRO_SPACE, Ctx, page_handler
from dmp.web.documents import offset_param
from dmp.web.pro_access import named_record, record_actor, record_url

SPACE = PRO_SPACE
HISTORY_PAGE = 50
NOT_FOUND = "Ce dossier n'existe pas ou ne vous est pas accessible."


def own_history(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, row = named_record(ctx)
    offset = offset_param(ctx)
    items, more = trail_read.own_history_page(
        ctx.conn, ctx.rt, record_actor(ctx, acc, row.id), row.id, count=HISTORY_PAGE, offset=offset
    )
    return ctx.render(
        "pro_history.html",
        title="Mon historique d'accès à ce dossier",
        items=items,
        more=more,
        next_url=f"{SPACE.url('/patient/mes-acces')}?ins={ins.value}&page_debut={offset + HISTORY_PAGE}",
        record_url=record_url(ins.value),
    )


def own_history_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:  # unknown, malformed or not to be opened: one answer
        return ctx.error_page(404, "Dossier introuvable", NOT_FOUND)
    return None


def routes() -> list[Route]:
    return [
        Route("/pro/patient/mes-acces", page_handler(SPACE, own_history, own_history_error), methods=["GET"]),
    ]
