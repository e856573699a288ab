"""The home's « Quoi de neuf depuis votre dernière visite » (issue 13): since the login before this
session's (``auth_pages.PREVIOUS_LOGIN``, kept in the session), through ``dmp.services.news``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dmp.audit.history import PARIS
from dmp.domain.actor import Actor
from dmp.services import news
from dmp.terminology import valueset
from dmp.web.auth_pages import PREVIOUS_LOGIN
from dmp.web.common import Ctx


@dataclass(frozen=True)
class Shown:
    since: str  # « le 23/11/2026 à 10:05 »
    news: news.News

    def type_label(self, code: str) -> str:
        found = valueset("J66").lookup(code)
        return found[0].display if found else code


def previous_visit(ctx: Ctx) -> datetime | None:
    raw = ctx.session.data.get(PREVIOUS_LOGIN) if ctx.session is not None else None
    if not isinstance(raw, str):
        return None
    try:
        found = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def since_last_visit(ctx: Ctx, actor: Actor, pid: UUID) -> Shown | None:
    """None on a first visit (nothing to compare with)."""
    when = previous_visit(ctx)
    if when is None:
        return None
    local = when.astimezone(PARIS)
    return Shown(f"le {local:%d/%m/%Y} à {local:%H:%M}", news.since(ctx.conn, ctx.rt, actor, pid, when))
