"""Message templates, in French: a subject and a plain-text body for e-mail, a short text for SMS.

Placeholders are ``string.Template`` names (``$code``). Parameters are checked when the message
is enqueued (unknown template, missing or unexpected parameter → ``ValueError``), stored as
strings, and substituted once at delivery: a value is never itself interpreted as a template,
and control characters (line breaks…) are flattened so that a value cannot forge a header or
a paragraph. Dates and times are written the French way, in Paris time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from string import Template
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dmp.outbox.privacy import EMAIL, SMS

ParamValue = str | int | date | datetime

MAX_PARAM_LENGTH = 300

GREETING = "Bonjour,\n\n"
SIGNATURE = (
    "\n\nL'équipe du Dossier Médical Partagé (DMP)\n\n"
    "-- \n"
    "Ce message vous est envoyé automatiquement ; merci de ne pas y répondre.\n"
    "Aucun agent du DMP ne vous demandera votre mot de passe ni un code reçu par SMS ou par courriel."
)
TRACE_NOTICE = (
    "Chaque accès à votre dossier est tracé : vous pouvez en consulter l'historique à tout moment. "
    "Si cet accès vous semble injustifié, signalez-le à votre caisse d'assurance maladie."
)


@dataclass(frozen=True)
class MessageTemplate:
    code: str
    subject: str
    body: str  # e-mail body, between the greeting and the signature
    sms: str  # SMS text (keep it short: one or two SMS)

    @property
    def params(self) -> frozenset[str]:
        names: set[str] = set()
        for text in (self.subject, self.body, self.sms):
            names.update(Template(text).get_identifiers())
        return frozenset(names)


@dataclass(frozen=True)
class Rendered:
    subject: str  # empty for SMS
    text: str


TEMPLATES: dict[str, MessageTemplate] = {
    t.code: t
    for t in (
        MessageTemplate(
            code="otp_code",
            subject="Votre code à usage unique DMP",
            body=(
                "Votre code à usage unique est : $code\n\n"
                "Il est valable $minutes minutes et ne sert qu'une fois. Ne le communiquez à personne.\n\n"
                "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."
            ),
            sms="DMP : votre code à usage unique est $code (valable $minutes min). "
            "Ne le communiquez à personne.",
        ),
        MessageTemplate(
            code="account_activation",
            subject="Activez votre compte DMP",
            body=(
                "Un compte d'accès au Dossier Médical Partagé (DMP) a été créé à votre nom.\n\n"
                "Pour l'activer, ouvrez le lien suivant :\n$link\n\n"
                "Ce lien est personnel et valable jusqu'au $valid_until. "
                "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."
            ),
            sms="DMP : activez votre compte avec ce lien personnel, valable jusqu'au $valid_until : $link",
        ),
        MessageTemplate(
            code="break_glass_alert",
            subject="Votre DMP a été consulté en urgence",
            body=(
                "Votre DMP a été consulté en urgence (bris de glace) par $professional, le $at.\n"
                "Motif : $reason\n\n"
                "L'accès en urgence permet à un professionnel de santé de consulter votre dossier "
                "lorsque votre état ne vous permet pas d'y consentir. " + TRACE_NOTICE
            ),
            sms="DMP : votre dossier a été consulté en urgence (bris de glace) par $professional "
            "le $at. Motif : $reason",
        ),
        MessageTemplate(
            code="centre15_alert",
            subject="Votre DMP a été consulté par le centre 15 (SAMU)",
            body=(
                "Votre DMP a été consulté par $professional, médecin régulateur du centre 15 (SAMU), "
                "le $at, lors de la prise en charge d'un appel d'urgence.\n\n" + TRACE_NOTICE
            ),
            sms="DMP : votre dossier a été consulté par le centre 15 (SAMU), $professional, le $at.",
        ),
        MessageTemplate(
            code="new_professional_access",
            subject="Un nouveau professionnel a accédé à votre DMP",
            body=(
                "$professional a accédé à votre DMP pour la première fois le $at.\n\n"
                "Vous pouvez à tout moment consulter la liste des professionnels qui ont accédé à "
                "votre dossier et bloquer l'accès de l'un d'eux. " + TRACE_NOTICE
            ),
            sms="DMP : $professional a accédé à votre dossier pour la première fois le $at.",
        ),
        MessageTemplate(
            code="new_document",
            subject="Un nouveau document a été ajouté à votre DMP",
            body=(
                "Un nouveau document a été ajouté à votre DMP par $author, le $at.\n\n"
                "Pour le lire, connectez-vous à votre DMP. Par confidentialité, ce message n'indique "
                "pas son contenu."
            ),
            sms="DMP : un nouveau document a été ajouté à votre dossier par $author le $at.",
        ),
        MessageTemplate(
            code="medecin_traitant_record_opened",
            subject="Un DMP a été ouvert pour l'un de vos patients",
            body=(
                "Vous êtes déclaré(e) médecin traitant de $patient, dont le Dossier Médical Partagé "
                "(DMP) a été ouvert le $at.\n\n"
                "Vous pouvez dès maintenant le consulter et l'alimenter depuis votre logiciel."
            ),
            sms="DMP : le dossier de votre patient(e) $patient a été ouvert le $at.",
        ),
        MessageTemplate(
            code="announcement_reminder",
            subject="DMP : un document attend toujours sa consultation d'annonce",
            body=(
                "Un document déposé le $submitted attend toujours sa consultation d'annonce : "
                "il reste invisible du patient tant que vous (ou son médecin traitant) ne levez "
                "pas le masquage.\n\n"
                "Référence du document : $reference (par confidentialité, ce message n'indique ni "
                "le patient ni le contenu).\n\n"
                "Après avoir informé le patient de son contenu, levez le masquage depuis votre "
                "logiciel (mise à jour des métadonnées du document)."
            ),
            sms="DMP : un document déposé le $submitted attend toujours sa consultation d'annonce.",
        ),
        MessageTemplate(
            code="majority_notice",
            subject="Vous êtes majeur(e) : vous gérez désormais seul(e) votre DMP",
            body=(
                "Depuis le $majority_date, vous êtes majeur(e) : vous gérez désormais seul(e) votre "
                "Dossier Médical Partagé (DMP). Vos représentants légaux n'y ont plus accès.\n\n"
                "Vous pouvez choisir les professionnels qui consultent votre dossier, masquer des "
                "documents ou demander la fermeture de votre dossier."
            ),
            sms="DMP : depuis le $majority_date, vous êtes majeur(e) et gérez seul(e) votre dossier. "
            "Vos représentants légaux n'y ont plus accès.",
        ),
        MessageTemplate(
            code="password_changed",
            subject="Le mot de passe de votre compte DMP a été modifié",
            body=(
                "Le mot de passe de votre compte DMP a été modifié le $at.\n\n"
                "Si vous êtes à l'origine de cette modification, vous n'avez rien à faire. Sinon, "
                "réinitialisez immédiatement votre mot de passe : quelqu'un a peut-être accès à "
                "votre compte."
            ),
            sms="DMP : le mot de passe de votre compte a été modifié le $at. Si ce n'est pas vous, "
            "réinitialisez-le immédiatement.",
        ),
    )
}


def _paris() -> ZoneInfo | None:
    try:
        return ZoneInfo("Europe/Paris")
    except ZoneInfoNotFoundError:  # no time zone database on the host: UTC, said in the text
        return None


PARIS = _paris()
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def format_datetime_fr(value: datetime) -> str:
    """``23/11/2026 à 10:30`` (Paris time); ValueError on a naive datetime."""
    if value.tzinfo is None:
        raise ValueError("date et heure sans fuseau horaire")
    zone: tzinfo = PARIS if PARIS is not None else UTC
    local = value.astimezone(zone)
    return f"{local:%d/%m/%Y} à {local:%H:%M}" + ("" if PARIS is not None else " (UTC)")


def format_param(value: ParamValue) -> str:
    """The stored, printable form of a parameter: one line, bounded."""
    if isinstance(value, datetime):
        text = format_datetime_fr(value)
    elif isinstance(value, date):
        text = f"{value:%d/%m/%Y}"
    elif isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"type de paramètre non pris en charge : {type(value).__name__}")
    else:
        text = str(value)
    text = " ".join(_CONTROL_RE.sub(" ", text).split())
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 1] + "…"
    return text


def get_template(code: str) -> MessageTemplate:
    try:
        return TEMPLATES[code]
    except KeyError:
        raise ValueError(f"modèle de message inconnu : {code!r}") from None


def prepare_params(code: str, params: Mapping[str, ParamValue]) -> dict[str, str]:
    """Check the parameters against the template and return their stored form."""
    template = get_template(code)
    missing = template.params - params.keys()
    extra = params.keys() - template.params
    if missing:
        raise ValueError(f"modèle {code} : paramètre(s) manquant(s) : {', '.join(sorted(missing))}")
    if extra:
        raise ValueError(f"modèle {code} : paramètre(s) inattendu(s) : {', '.join(sorted(extra))}")
    return {name: format_param(params[name]) for name in sorted(template.params)}


def render(code: str, params: Mapping[str, str], channel: str) -> Rendered:
    """The text of a message for a channel; values are flattened again (stored rows are data)."""
    template = get_template(code)
    values = {name: format_param(str(params[name])) for name in template.params}
    if channel == SMS:
        return Rendered(subject="", text=Template(template.sms).substitute(values))
    if channel == EMAIL:
        return Rendered(
            subject=Template(template.subject).substitute(values),
            text=GREETING + Template(template.body).substitute(values) + SIGNATURE,
        )
    raise ValueError(f"canal inconnu : {channel!r} (email ou sms)")
