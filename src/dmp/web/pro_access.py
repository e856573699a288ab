"""How a professional gets into a record they may not open yet (issue 13, professional space).

The refusal page offers what the policy allows, and only that: attest the patient's
authorisation (AC-02), break the glass (AC-13, emergency professionals) or open in the centre 15
mode (AC-14, regulators). An emergency mode is kept in the portal session for that one record,
for a bounded time (``EMERGENCY_WINDOW``); the record and its documents are then read with the
API's emergency Actor (purpose ETREAT or CENTRE15, with the justification), so the policy, the
trail and the patient's notification are the API's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts import service, sessions
from dmp.accounts.service import Account
from dmp.domain.actor import Actor, PurposeOfUse
from dmp.domain.consent import ConsentKind
from dmp.domain.ins import SYSTEM_NIA, SYSTEM_NIR, Ins, parse_ins
from dmp.errors import DmpError
from dmp.policy import may_break_glass, may_regulate
from dmp.services import access, consents, documents, records
from dmp.services.emergency import EMERGENCY_WINDOW
from dmp.services.trail import AuditAction
from dmp.web.common import PRO_SPACE, Ctx, form_handler, page_handler

SPACE = PRO_SPACE
EMERGENCY_KEY = "urgence"  # session data: {record id: {"purpose", "justification", "until"}}
RECENT_KEY = "recents"  # session data: the ids of the records opened, most recent first
RECENT_MAX = 10
JUSTIFICATION_MAX = 1000  # as the API's assertion (auth.assertion)
_MODES = {"bris_de_glace": PurposeOfUse.ETREAT, "centre_15": PurposeOfUse.CENTRE15}
ATTEST_MISSING = "Cochez la case pour attester que le patient vous a autorisé(e)."


def named_record(ctx: Ctx) -> tuple[Ins, Any]:
    """The record named by ``?ins=``; a malformed or unknown INS is a missing record (404)."""
    try:
        ins = parse_ins_input(ctx.request.query_params.get("ins", ""), ctx.rt.settings.test_instance)
    except DmpError:
        raise DmpError("NOT_FOUND") from None
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        raise DmpError("NOT_FOUND")
    return ins, row


def parse_ins_input(raw: str, allow_test: bool) -> Ins:
    value = "".join(raw.split()).upper()
    system = SYSTEM_NIA if value[:1] in ("7", "8") else SYSTEM_NIR
    return parse_ins(system, value, allow_test=allow_test)


def record_url(ins: str) -> str:
    return SPACE.url("/patient") + "?ins=" + quote(ins)


# ---- the emergency mode, record-scoped, in the session ----------------------------------------


def _emergencies(ctx: Ctx) -> dict[str, dict[str, str]]:
    if ctx.session is None:
        return {}
    found = ctx.session.data.get(EMERGENCY_KEY)
    return found if isinstance(found, dict) else {}


def _live(entry: Any, now: datetime) -> bool:
    try:
        return isinstance(entry, dict) and datetime.fromisoformat(str(entry.get("until"))) > now
    except ValueError:
        return False


def emergency_actor(base: Actor, entry: dict[str, str]) -> Actor:
    return replace(base, purpose=PurposeOfUse(entry["purpose"]), justification=entry["justification"])


def record_actor(ctx: Ctx, acc: Account, record_id: UUID) -> Actor:
    """The professional's Actor for this record: in emergency mode while their session holds a
    live one for this record (and for no other), else the ordinary one."""
    actor = ctx.actor(acc)
    entry = _emergencies(ctx).get(str(record_id))
    return emergency_actor(actor, entry) if entry and _live(entry, ctx.now) else actor


def recent_records(ctx: Ctx) -> list[str]:
    """The ids of the records this session opened, most recent first (« patients récents »)."""
    found = ctx.session.data.get(RECENT_KEY) if ctx.session is not None else None
    return [str(i) for i in found] if isinstance(found, list) else []


def _remember(ctx: Ctx, record_id: UUID) -> None:
    recent = recent_records(ctx)
    if ctx.session is None or recent[:1] == [str(record_id)]:
        return
    ctx.session.data[RECENT_KEY] = [str(record_id), *[i for i in recent if i != str(record_id)]][:RECENT_MAX]
    sessions.save(ctx.conn, ctx.session)


def record_extras(ctx: Ctx, record_id: UUID) -> dict[str, Any]:
    """What the record page, once opened, shows of this module's state (the live emergency mode,
    if any); the record joins the session's recent ones."""
    _remember(ctx, record_id)
    entry = _emergencies(ctx).get(str(record_id))
    if not entry or not _live(entry, ctx.now):
        return {"emergency": None}
    label = "régulation médicale (centre 15)" if entry["purpose"] == "CENTRE15" else "bris de glace"
    return {"emergency": {"label": label, "until": datetime.fromisoformat(entry["until"])}}


def document_actor(ctx: Ctx, acc: Account, raw_id: str) -> Actor:
    """The Actor reading document ``raw_id``: the emergency one if the document's record is in
    emergency mode in this session (``documents.retrieve`` then decides, 404 if hidden)."""
    if not _emergencies(ctx):
        return ctx.actor(acc)
    try:
        record_id = documents.record_of(ctx.conn, UUID(raw_id))
    except ValueError:
        record_id = None
    return record_actor(ctx, acc, record_id) if record_id is not None else ctx.actor(acc)


def _keep_emergency(ctx: Ctx, record_id: UUID, purpose: PurposeOfUse, justification: str) -> None:
    session = ctx.session
    if session is None:  # form_handler checked the CSRF token: a session exists
        raise RuntimeError("no session")
    kept = {k: v for k, v in _emergencies(ctx).items() if _live(v, ctx.now)}
    kept[str(record_id)] = {
        "purpose": purpose.value,
        "justification": justification,
        "until": (ctx.now + EMERGENCY_WINDOW).isoformat(),
    }
    session.data[EMERGENCY_KEY] = kept
    sessions.save(ctx.conn, session)


# ---- the refusal page ---------------------------------------------------------------------------


def _holder(row: Any, ins: Ins) -> dict[str, Any]:
    return {"name": service.patient_display_name(row), "birth_date": row.birth_date, "ins": ins.value}


def refusal_page(
    ctx: Ctx,
    err: DmpError,
    *,
    form: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
    offer_emergency: bool = True,
) -> Response | None:
    """Why the record does not open, and what the policy lets this professional do about it."""
    acc = ctx.full_account()
    raw = (form or {}).get("ins") or ctx.request.query_params.get("ins", "")
    if acc is None or err.code not in ("FORBIDDEN",):
        return None
    try:
        ins = parse_ins_input(raw, ctx.rt.settings.test_instance)
    except DmpError:
        return None
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        return None
    actor = ctx.actor(acc)
    # What is offered is what the policy would allow; a forged POST is decided again anyway.
    return ctx.render(
        "pro_refused.html",
        status=400 if field_errors else err.status,
        title="Dossier du patient",
        holder=_holder(row, ins),
        reason=(err.detail or err.message).rstrip("."),  # the policy's reason, not « Action non autorisée »
        attest=access.may_attest(ctx.conn, ctx.rt, actor, row),
        break_glass=offer_emergency and may_break_glass(actor),
        regulate=offer_emergency and may_regulate(actor),
        form=form or {},
        field_errors=field_errors or {},
        window_minutes=int(EMERGENCY_WINDOW.total_seconds() // 60),
    )


def patient_error(ctx: Ctx, err: DmpError) -> Response | None:
    return refusal_page(ctx, err)


def _record_of_form(ctx: Ctx, form: dict[str, str]) -> tuple[Ins, Any]:
    """The record a form names by its INS; a malformed or unknown INS is a missing record."""
    try:
        ins = parse_ins_input(form.get("ins", ""), ctx.rt.settings.test_instance)
    except DmpError:
        raise DmpError("NOT_FOUND") from None
    row = records.find_by_ins(ctx.conn, ins)
    if row is None:
        raise DmpError("NOT_FOUND")
    return ins, row


# ---- attestation (AC-02) ------------------------------------------------------------------------


def attest(ctx: Ctx, form: dict[str, str]) -> Response:
    """« Le patient m'a autorisé », in one step, through the consent service: the policy decides."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, row = _record_of_form(ctx, form)
    if form.get("atteste") != "oui":
        refused = DmpError("FORBIDDEN", "le patient n'a pas autorisé ce professionnel")
        page = refusal_page(ctx, refused, form=form, field_errors={"atteste": ATTEST_MISSING})
        return page or ctx.redirect(record_url(ins.value))
    actor = ctx.actor(acc)
    consents.add(
        ctx.conn, actor, consents.facts(ctx.conn, row), ConsentKind.AUTHORISATION, actor.id, True,
        access.context(ctx.rt),
    )
    return ctx.redirect(SPACE.url("/patient/autorisation/enregistree") + "?ins=" + quote(ins.value))


def attested(ctx: Ctx) -> Response:
    """The confirmation of the attestation, with the way into the record."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, row = _record_of_form(ctx, {"ins": ctx.request.query_params.get("ins", "")})
    return ctx.render(
        "pro_attested.html",
        title="Autorisation enregistrée",
        holder=_holder(row, ins),
        record_url=record_url(ins.value),
        notice="Votre attestation de l'autorisation du patient est enregistrée et tracée dans son DMP.",
    )


def attest_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:
        return ctx.error_page(404, "Dossier introuvable", "Aucun DMP n'existe pour cet INS.")
    return ctx.error_page(err.status, "Attestation refusée", err.message)


# ---- break the glass (AC-13) and centre 15 (AC-14) ---------------------------------------------


def _justification_error(text: str) -> str | None:
    if not text:
        return "Saisissez la justification de l'accès en urgence : elle sera communiquée au patient."
    if len(text) > JUSTIFICATION_MAX:
        return f"La justification ne peut dépasser {JUSTIFICATION_MAX} caractères."
    return None


def break_glass(ctx: Ctx, form: dict[str, str]) -> Response:
    """Open the record in emergency mode: the policy decides (and traces a refusal) with the
    API's emergency Actor; the opening is traced with the justification and notified to the
    patient (``access.open_record``), then kept in the session for this record only."""
    acc = ctx.full_account()
    if acc is None:
        return ctx.to_login()
    ins, row = _record_of_form(ctx, form)
    purpose = _MODES.get(form.get("mode", "bris_de_glace"), PurposeOfUse.ETREAT)
    text = " ".join(form.get("justification", "").split())
    base = ctx.actor(acc)
    offered = may_regulate(base) if purpose is PurposeOfUse.CENTRE15 else may_break_glass(base)
    problem = _justification_error(text) if offered else None
    if problem is not None:
        refused = DmpError("FORBIDDEN", "le patient n'a pas autorisé ce professionnel")
        page = refusal_page(ctx, refused, form=form, field_errors={"justification": problem})
        return page or ctx.redirect(record_url(ins.value))
    actor = replace(base, purpose=purpose, justification=text or None)
    access.open_record(ctx.conn, ctx.rt, actor, row, attempted=AuditAction.RECORD_READ)
    _keep_emergency(ctx, row.id, purpose, text)
    return ctx.redirect(record_url(ins.value))


def break_glass_error(ctx: Ctx, err: DmpError) -> Response | None:
    if err.status == 404:
        return ctx.error_page(404, "Dossier introuvable", "Aucun DMP n'existe pour cet INS.")
    # Refused by the policy (not emergency staff, the patient's refusal): said, not offered again.
    return refusal_page(ctx, err, offer_emergency=False)


def routes() -> list[Route]:
    get, post = page_handler, form_handler
    return [
        Route("/pro/patient/autorisation", post(SPACE, attest, attest_error), methods=["POST"]),
        Route("/pro/patient/autorisation/enregistree", get(SPACE, attested, attest_error), methods=["GET"]),
        Route("/pro/patient/urgence", post(SPACE, break_glass, break_glass_error), methods=["POST"]),
    ]
