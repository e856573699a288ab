"""« Historique des accès » (TR-01/TR-02, issue 13): the record's trail in plain French, filtered by
professional, period and kind of action, the holder's own consultations hidden unless asked, and
its export as CSV and PDF. Everything goes through ``dmp.services.trail_read`` (the scope of the
policy, the filters in SQL, every read and export traced).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.audit.history import KINDS, PARIS
from dmp.audit.history_export import history_csv, history_pdf
from dmp.domain.actor import Actor
from dmp.services import trail_read
from dmp.services.trail_read import HistoryFilter
from dmp.web.common import Ctx, Space
from dmp.web.documents import offset_param
from dmp.web.self_service import Consulted, on_record_get

PAGE = "/historique"
HISTORY_PAGE = 50
EXPORT_LIMIT = 2000  # lines in one export: beyond, the reader narrows the filters
_NO_STORE = {"Cache-Control": "no-store", "Content-Security-Policy": "sandbox; default-src 'none'"}


@dataclass
class Filters:
    """The filters as read from the query string, the errors to show next to their fields."""

    wanted: HistoryFilter
    values: dict[str, str]  # what the form shows again
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **extra: str) -> str:
        """« ?professionnel=…&du=… » with the filters set (and ``extra``), or nothing."""
        kept = {k: v for k, v in {**self.values, **extra}.items() if v}
        return f"?{urlencode(kept)}" if kept else ""


def _day(raw: str, label: str, errors: dict[str, str], key: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[key] = f"{label} : saisissez une date au format JJ/MM/AAAA."
        return None


def _paris_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=PARIS)


def read_filters(ctx: Ctx) -> Filters:
    q = ctx.request.query_params
    values = {
        "professionnel": q.get("professionnel", "")[:64],
        "du": q.get("du", "")[:10],
        "au": q.get("au", "")[:10],
        "type": q.get("type", "")[:20],
        "mes_consultations": "oui" if q.get("mes_consultations") == "oui" else "",
    }
    errors: dict[str, str] = {}
    start = _day(values["du"], "Du", errors, "du")
    end = _day(values["au"], "Au", errors, "au")
    if start and end and end < start:
        errors["au"] = "Au : la date de fin doit suivre la date de début."
        end = None
    if values["type"] and values["type"] not in KINDS:
        errors["type"] = "Type d'action : choisissez l'un des types de la liste."
        values["type"] = ""
    wanted = HistoryFilter(
        professional=values["professionnel"] or None,
        start=_paris_midnight(start) if start else None,
        end=_paris_midnight(end + timedelta(days=1)) if end else None,  # « au » includes that day
        kind=values["type"] or None,
        own_consultations=values["mes_consultations"] == "oui",
    )
    return Filters(wanted, values, errors)


def _described(f: Filters, names: dict[str, str]) -> str:
    """The filters in words, for the PDF's heading."""
    parts = []
    if f.values["professionnel"]:
        parts.append(f"professionnel {names.get(f.values['professionnel'], f.values['professionnel'])}")
    if f.wanted.start:
        parts.append(f"du {f.wanted.start:%d/%m/%Y}")
    if f.wanted.end:
        parts.append(f"au {(f.wanted.end - timedelta(days=1)):%d/%m/%Y}")
    if f.wanted.kind:
        parts.append(KINDS[f.wanted.kind].lower())
    parts.append(("avec" if f.wanted.own_consultations else "sans") + " vos propres consultations")
    return ", ".join(parts)


def page(holder_name: Callable[[Ctx, UUID], str]) -> Callable[[Ctx, Actor, UUID], Response]:
    def history_page(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
        f = read_filters(ctx)
        offset = offset_param(ctx)
        pros = trail_read.professionals(ctx.conn, ctx.rt, actor, pid)
        hidden = 0 if f.wanted.own_consultations else trail_read.hidden_own_consultations(
            ctx.conn, ctx.rt, actor, pid, f.wanted
        )
        items, more = trail_read.history_page(
            ctx.conn, ctx.rt, actor, pid, count=HISTORY_PAGE, offset=offset, wanted=f.wanted
        )
        return ctx.render(
            "history.html",
            status=400 if f.errors else 200,
            title="Historique des accès",
            items=items,
            more=more,
            next_url=PAGE + f.query(page_debut=str(offset + HISTORY_PAGE)),
            holder=holder_name(ctx, pid),
            professionals=pros,
            kinds=KINDS,
            values=f.values,
            field_errors=f.errors,
            hidden_own=hidden,
            toggle_url=PAGE + f.query(mes_consultations="" if f.wanted.own_consultations else "oui"),
            csv_url=f"{PAGE}/export.csv{f.query()}",
            pdf_url=f"{PAGE}/export.pdf{f.query()}",
        )

    return history_page


def _download(content: bytes, media_type: str, name: str) -> Response:
    headers = {**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(content, media_type=media_type, headers=headers)


def export_csv(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    f = read_filters(ctx)
    items, _ = trail_read.history_export(
        ctx.conn, ctx.rt, actor, pid, f.wanted, limit=EXPORT_LIMIT, what="export CSV"
    )
    stamp = f"{ctx.now.astimezone(PARIS):%Y-%m-%d}"
    return _download(history_csv(items), "text/csv; charset=utf-8", f"historique-acces-{stamp}.csv")


def export_pdf(holder_name: Callable[[Ctx, UUID], str]) -> Callable[[Ctx, Actor, UUID], Response]:
    def work(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
        f = read_filters(ctx)
        names = {p.rpps: p.label for p in trail_read.professionals(ctx.conn, ctx.rt, actor, pid)}
        items, truncated = trail_read.history_export(
            ctx.conn, ctx.rt, actor, pid, f.wanted, limit=EXPORT_LIMIT, what="export PDF"
        )
        content = history_pdf(
            items, holder=holder_name(ctx, pid), filters=_described(f, names), generated_at=ctx.now,
            truncated=truncated,
        )
        stamp = f"{ctx.now.astimezone(PARIS):%Y-%m-%d}"
        return _download(content, "application/pdf", f"historique-acces-{stamp}.pdf")

    return work


def routes(space: Space, consulted: Consulted, holder_name: Callable[[Ctx, UUID], str]) -> list[Route]:
    get = on_record_get(space, consulted, None)
    return [
        Route(PAGE, get(page(holder_name)), methods=["GET"]),
        Route(PAGE + "/export.csv", get(export_csv), methods=["GET"]),
        Route(PAGE + "/export.pdf", get(export_pdf(holder_name)), methods=["GET"]),
    ]
