"""« Qui a accès à mon dossier » (issue 13, patient space): the patient's access choices, read and
changed through ``dmp.services.consents`` (the policy decides, the service traces).

Every change is two steps: a confirmation page that says in plain French what will happen, then
the action itself, then the list again with a confirmation message (post, redirect, get).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection
from starlette.responses import Response
from starlette.routing import Route

from dmp.accounts.service import PRO, find
from dmp.domain.actor import Actor
from dmp.domain.consent import ConsentKind, ConsentRow
from dmp.domain.professional import idnps_from_rpps, rpps_from_idnps
from dmp.errors import DmpError
from dmp.services import access, consents
from dmp.web.common import Ctx, Space
from dmp.web.self_service import Consulted, on_record_get, on_record_post

PAGE = "/acces"
TITLE = "Qui a accès à mon dossier"

# The three emergency consents (MES): form value → (kind, label, what yes means, what no means).
EMERGENCY = {
    "samu": (
        ConsentKind.EMERGENCY_SAMU,
        "Accès du médecin régulateur du SAMU (centre 15)",
        "Lors d'un appel au 15, le médecin régulateur peut consulter votre dossier.",
        "Le médecin régulateur du centre 15 ne peut pas consulter votre dossier.",
    ),
    "btg": (
        ConsentKind.EMERGENCY_BREAK_GLASS,
        "Accès en urgence (« bris de glace »)",
        "Un professionnel des urgences peut consulter votre dossier sans votre autorisation s'il "
        "justifie l'urgence ; vous en êtes averti(e).",
        "Aucun professionnel ne peut consulter votre dossier en urgence sans votre autorisation.",
    ),
    "masked": (
        ConsentKind.EMERGENCY_MASKED,
        "Documents masqués lors d'un accès en urgence",
        "Lors d'un accès en urgence, les documents que vous avez masqués sont aussi visibles.",
        "Lors d'un accès en urgence, les documents que vous avez masqués restent cachés.",
    ),
}
EMERGENCY_DEFAULTS = {"samu": True, "btg": True, "masked": False}

DONE = {
    "bloquer": "Le professionnel est bloqué : il ne peut plus accéder à votre dossier.",
    "debloquer": "Le professionnel n'est plus bloqué. Il devra de nouveau obtenir votre autorisation.",
    "retirer": "L'accès a été retiré.",
    "designer": "Votre demande est enregistrée : le médecin doit maintenant accepter d'être votre "
    "médecin traitant.",
    "urgence": "Votre choix pour les accès en urgence est enregistré.",
}
REVOCABLE = {
    ConsentKind.AUTHORISATION,
    ConsentKind.CARE_TEAM,
    ConsentKind.ADMINISTRATOR,
    ConsentKind.MEDECIN_TRAITANT,
}


@dataclass(frozen=True)
class Line:
    """One consent as the patient reads it."""

    row: ConsentRow
    who: str  # the professional or structure concerned
    by: str  # who recorded it
    state: str  # for the médecin traitant: the acceptance state


@dataclass(frozen=True)
class Change:
    """A validated change: what to do, to whom, and the sentence that says it."""

    action: str
    fields: dict[str, str]
    summary: str
    consequence: str


def professional_label(conn: Connection, idnps: str | None) -> str:
    """« Name (structure), RPPS n » from the directory, or the bare identifier."""
    if not idnps:
        return ""
    try:
        rpps = rpps_from_idnps(idnps)
    except DmpError:
        return idnps
    acc = find(conn, PRO, rpps)
    if acc is None:
        return f"professionnel RPPS {rpps}"
    where = f" ({acc.structure_name})" if acc.structure_name else ""
    return f"{acc.display_name}{where}, RPPS {rpps}"


def _recorded_by(ctx: Ctx, row: ConsentRow) -> str:
    if row.created_by == str(row.patient_id):
        return "vous"
    if len(row.created_by) == 12 and row.created_by.isdigit():  # an IDNPS, not an account id
        return professional_label(ctx.conn, row.created_by)
    return "votre représentant légal"


def _mt_state(row: ConsentRow) -> str:
    if row.kind is not ConsentKind.MEDECIN_TRAITANT:
        return ""
    if row.status == "active":
        return "désigné et accepté par le médecin"
    if row.created_by == row.subject_id:
        return "le médecin propose d'être votre médecin traitant : désignez-le pour confirmer"
    return "en attente de l'acceptation du médecin"


def _line(ctx: Ctx, row: ConsentRow) -> Line:
    if row.kind is ConsentKind.CARE_TEAM:
        who = f"la structure {row.subject_id}"
    else:
        who = professional_label(ctx.conn, row.subject_id)
    return Line(row, who, _recorded_by(ctx, row), _mt_state(row))


def _rows(ctx: Ctx, actor: Actor, pid: UUID) -> list[ConsentRow]:
    """The record's consents as the policy lets ``actor`` read them (traced by the service)."""
    return consents.read_visible(ctx.conn, actor, pid, access.context(ctx.rt))


def _emergency_state(rows: list[ConsentRow]) -> dict[str, bool]:
    active = [(r.kind.value, r.subject_id, r.permit) for r in rows if r.status == "active"]
    e = consents.build(active).emergency
    return {"samu": e.samu, "btg": e.break_glass, "masked": e.masked}


def render_page(
    ctx: Ctx, actor: Actor, pid: UUID, *, status: int = 200, errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None, notice: str | None = None,
) -> Response:
    rows = _rows(ctx, actor, pid)
    lines = [_line(ctx, r) for r in rows]

    def of(*kinds: ConsentKind) -> list[Line]:
        return [ln for ln in lines if ln.row.kind in kinds]

    field_errors = errors or {}
    return ctx.render(
        "patient_access.html",
        status=status,
        title=TITLE,
        authorised=of(ConsentKind.AUTHORISATION),
        care_teams=of(ConsentKind.CARE_TEAM),
        medecin=of(ConsentKind.MEDECIN_TRAITANT),
        administrators=of(ConsentKind.ADMINISTRATOR),
        blocked=of(ConsentKind.BLOCK),
        emergency=EMERGENCY,
        emergency_state=_emergency_state(rows),
        emergency_defaults=EMERGENCY_DEFAULTS,
        field_errors=field_errors,
        errors=list(field_errors.values()),
        values=values or {},
        notice=notice,
    )


def _professional(raw: str) -> str:
    """The IDNPS of an RPPS (11 digits) or IDNPS (8 + RPPS) typed by the patient."""
    value = "".join(raw.split())
    if not value:
        raise DmpError("INVALID_VALUE", "Saisissez le numéro RPPS (11 chiffres) du professionnel.")
    if len(value) == 12:
        rpps_from_idnps(value)
        return value
    return idnps_from_rpps(value)


def _row_of(rows: list[ConsentRow], raw: str, kinds: set[ConsentKind]) -> ConsentRow:
    found = next((r for r in rows if str(r.id) == raw and r.kind in kinds), None)
    if found is None:
        raise DmpError("NOT_FOUND", "Cet accès n'existe pas ou a déjà été retiré.")
    return found


class FieldError(Exception):
    """A form value to correct: shown next to its field, the input kept."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _typed_professional(form: dict[str, str], name: str) -> str:
    try:
        return _professional(form.get(name, ""))
    except DmpError as err:
        raise FieldError(name, f"Numéro du professionnel : {err.message}") from err


def _block(ctx: Ctx, form: dict[str, str]) -> Change:
    # From a line of the page (its IDNPS) or typed by the patient (an RPPS).
    subject = _typed_professional(form, "professionnel" if "professionnel" in form else "rpps_bloquer")
    who = professional_label(ctx.conn, subject)
    return Change(
        "bloquer", {"professionnel": subject}, f"Bloquer {who}",
        "Ce professionnel ne pourra plus consulter ni alimenter votre dossier, même s'il avait votre "
        "autorisation : son autorisation et son rôle d'administrateur éventuels prennent fin. Seul un "
        "accès en urgence reste possible si vous l'autorisez. Vous pourrez le débloquer à tout moment.",
    )


def _unblock(ctx: Ctx, rows: list[ConsentRow], form: dict[str, str]) -> Change:
    row = _row_of(rows, form.get("consentement", ""), {ConsentKind.BLOCK})
    who = professional_label(ctx.conn, row.subject_id)
    return Change(
        "debloquer", {"consentement": str(row.id)}, f"Débloquer {who}",
        "Ce professionnel ne sera plus bloqué. Il n'aura pas accès pour autant : il devra de nouveau "
        "obtenir votre autorisation (par exemple lors d'une consultation).",
    )


def _revoke(ctx: Ctx, rows: list[ConsentRow], form: dict[str, str]) -> Change:
    row = _row_of(rows, form.get("consentement", ""), REVOCABLE)
    line = _line(ctx, row)
    what = {
        ConsentKind.AUTHORISATION: "l'autorisation d'accès de",
        ConsentKind.CARE_TEAM: "l'accès de l'équipe de soins de la",
        ConsentKind.ADMINISTRATOR: "le rôle d'administrateur de",
        ConsentKind.MEDECIN_TRAITANT: "la désignation comme médecin traitant de",
    }[row.kind]
    return Change(
        "retirer", {"consentement": str(row.id)}, f"Retirer {what} {line.who}",
        "Dès la confirmation, cet accès prend fin. Le professionnel ne pourra de nouveau consulter votre "
        "dossier que si vous l'y autorisez à nouveau. Ce qu'il a déjà déposé reste dans votre dossier.",
    )


def _designate(ctx: Ctx, form: dict[str, str]) -> Change:
    subject = _typed_professional(form, "rpps_medecin")
    who = professional_label(ctx.conn, subject)
    return Change(
        "designer", {"rpps_medecin": subject}, f"Désigner {who} comme médecin traitant",
        "Le médecin devra accepter cette désignation. Une fois acceptée, il pourra consulter tout votre "
        "dossier, y compris les documents que vous avez masqués ; il remplacera votre médecin traitant "
        "actuel dans le DMP.",
    )


def _emergency(form: dict[str, str]) -> Change:
    key, choice = form.get("urgence", ""), form.get("choix", "")
    if key not in EMERGENCY or choice not in ("oui", "non"):
        raise FieldError("urgence", "Choisissez « oui » ou « non » pour cet accès en urgence.")
    _, label, yes, no = EMERGENCY[key]
    return Change(
        "urgence", {"urgence": key, "choix": choice},
        f"{label} : {'autoriser' if choice == 'oui' else 'refuser'}", yes if choice == "oui" else no,
    )


def validate(ctx: Ctx, rows: list[ConsentRow], form: dict[str, str]) -> Change:
    """The change the form asks for, checked and described (FieldError or DmpError otherwise)."""
    action = form.get("action", "")
    if action == "bloquer":
        return _block(ctx, form)
    if action == "debloquer":
        return _unblock(ctx, rows, form)
    if action == "retirer":
        return _revoke(ctx, rows, form)
    if action == "designer":
        return _designate(ctx, form)
    if action == "urgence":
        return _emergency(form)
    raise DmpError("INVALID_VALUE", "Action inconnue.")


def apply(ctx: Ctx, actor: Actor, pid: UUID, req: Change) -> None:
    """The change, through the consent service: the policy decides, the service traces."""
    found = consents.record_by_id(ctx.conn, pid)
    if found is None:
        raise DmpError("RECORD_NOT_FOUND")
    facts = found[1]
    pctx = access.context(ctx.rt)
    f = req.fields
    if req.action == "bloquer":
        consents.add(ctx.conn, actor, facts, ConsentKind.BLOCK, f["professionnel"], True, pctx)
    elif req.action == "designer":
        consents.add(ctx.conn, actor, facts, ConsentKind.MEDECIN_TRAITANT, f["rpps_medecin"], True, pctx)
    elif req.action == "urgence":
        kind = EMERGENCY[f["urgence"]][0]
        consents.add(ctx.conn, actor, facts, kind, None, f["choix"] == "oui", pctx)
    else:  # debloquer, retirer
        consents.revoke(ctx.conn, actor, facts, UUID(f["consentement"]), pctx)


def confirm(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
    """Step 1: the confirmation page, or the list again with the error next to its field."""
    rows = consents.list_rows(ctx.conn, pid)
    try:
        req = validate(ctx, rows, form)
    except FieldError as err:
        kept = {k: v for k, v in form.items() if k != "csrf"}
        return render_page(ctx, actor, pid, status=400, errors={err.name: err.message}, values=kept)
    return ctx.render("patient_access_confirm.html", title="Confirmer", req=req)


def execute(ctx: Ctx, actor: Actor, pid: UUID, form: dict[str, str]) -> Response:
    """Step 2: the change itself, then back to the list with the confirmation message."""
    try:
        req = validate(ctx, consents.list_rows(ctx.conn, pid), form)
    except FieldError as err:  # only a forged or stale form gets here: step 1 checked it
        return ctx.error_page(400, "Action impossible", err.message)
    apply(ctx, actor, pid, req)
    return ctx.redirect(f"{PAGE}?fait={req.action}")


# ---- handlers -------------------------------------------------------------------------------


def page_get(ctx: Ctx, actor: Actor, pid: UUID) -> Response:
    notice = DONE.get(ctx.request.query_params.get("fait", ""))  # a fixed text, never the query echoed
    return render_page(ctx, actor, pid, notice=notice)


def change_error(ctx: Ctx, err: DmpError) -> Response | None:
    """A refusal (traced by the service, the change rolled back) in plain French."""
    if err.code == "RECORD_CLOSED":
        return ctx.error_page(409, "Dossier fermé", err.message)
    if err.status == 403:
        return ctx.error_page(403, "Action refusée", f"Cette modification n'est pas permise : {err.message}.")
    if err.status == 404:
        return ctx.error_page(404, "Introuvable", "Cet accès n'existe pas ou a déjà été retiré.")
    return None


def routes(space: Space, consulted: Consulted) -> list[Route]:
    """The pages, for the record ``consulted`` finds (the patient's own, or a represented minor's)."""
    get, post = on_record_get(space, consulted, change_error), on_record_post(space, consulted, change_error)
    return [
        Route(PAGE, get(page_get), methods=["GET"]),
        Route(PAGE + "/confirmer", post(confirm), methods=["POST"]),
        Route(PAGE + "/valider", post(execute), methods=["POST"]),
    ]
