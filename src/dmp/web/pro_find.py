"""Find a patient by strict identity traits, and « patients récents » (issue 13).

The search goes through ``services.record_check.by_traits`` (the policy's ``learns_record_exists``
decides what the professional is told, every answer traced); the recent patients are the records
this session opened (``pro_access.recent_records``), nothing read from anyone else's trail.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service
from dmp.domain.identity import Sex
from dmp.services import records
from dmp.services.record_check import TraitsQuery, by_traits
from dmp.web.common import PRO_SPACE, Ctx, page_handler
from dmp.web.forms import french_date
from dmp.web.pro_access import recent_records, record_url

SPACE = PRO_SPACE
FIELDS = ("nom", "prenom", "naissance", "sexe")
SEXES = {"female": Sex.FEMALE, "male": Sex.MALE, "unknown": Sex.UNKNOWN}
NAME_MAX = 100


def _name_error(value: str, what: str) -> str | None:
    if not value:
        return f"Saisissez le {what}."
    return f"Le {what} ne peut dépasser {NAME_MAX} caractères." if len(value) > NAME_MAX else None


def parse_query(form: dict[str, str], today: date) -> tuple[TraitsQuery | None, dict[str, str]]:
    """The traits asked, or the French error of each wrong field."""
    family, first = form.get("nom", "").strip(), form.get("prenom", "").strip()
    errors = {
        k: e
        for k, e in (("nom", _name_error(family, "nom de naissance")),
                     ("prenom", _name_error(first, "premier prénom de naissance")))
        if e
    }
    born = french_date(form.get("naissance", "").strip())
    if born is None or born > today or born.year < 1880:
        errors["naissance"] = "Saisissez une date de naissance valide (jj/mm/aaaa), pas dans le futur."
    sex = SEXES.get(form.get("sexe", ""))
    if sex is None:
        errors["sexe"] = "Choisissez le sexe."
    if errors or born is None or sex is None:
        return None, errors
    return TraitsQuery(family, first, born, sex), {}


def _recent(ctx: Ctx) -> list[dict[str, Any]]:
    out = []
    for raw in recent_records(ctx):
        row = records.get(ctx.conn, UUID(raw))
        if row is not None:
            out.append({"name": service.patient_display_name(row), "birth_date": row.birth_date,
                        "url": record_url(row.ins_value)})
    return out


def find_page(ctx: Ctx) -> Response:
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    form = {k: ctx.request.query_params.get(k, "")[:200] for k in FIELDS}
    asked = any(form.values())
    query, errors = parse_query(form, ctx.now.date()) if asked else (None, {})
    matches = by_traits(ctx.conn, ctx.rt, ctx.actor(acc), query) if query is not None else None
    return ctx.render(
        "pro_find.html",
        status=400 if errors else 200,
        title="Rechercher un patient par ses traits d'identité",
        form=form,
        field_errors=errors,
        matches=[{"m": m, "url": record_url(m.ins)} for m in matches] if matches is not None else None,
        recent=_recent(ctx),
    )


def routes() -> list[Route]:
    return [Route("/pro/patients", page_handler(SPACE, find_page), methods=["GET"])]
