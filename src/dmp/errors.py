"""Stable error codes with French messages.

Every refusal the service gives leaves through one of these codes, rendered as a
FHIR ``OperationOutcome`` by the API layer. ``docs/errors.md`` lists them and a test
checks that the page and this table agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str
    status: int
    issue_type: str  # FHIR IssueType (http://hl7.org/fhir/issue-type)
    message: str  # French, shown to professionals; may contain {placeholders}


def _k(code: str, status: int, issue_type: str, message: str) -> ErrorKind:
    return ErrorKind(code, status, issue_type, message)


# The catalogue. Codes never change once published; messages may be improved.
CATALOGUE: dict[str, ErrorKind] = {
    k.code: k
    for k in (
        _k("MALFORMED_JSON", 400, "structure", "Le corps de la requête n'est pas un JSON valide : {detail}"),
        _k("INVALID_RESOURCE", 400, "structure", "Ressource FHIR invalide : {detail}"),
        _k("UNKNOWN_RESOURCE_TYPE", 404, "not-supported", "Type de ressource non pris en charge : {detail}"),
        _k(
            "UNSUPPORTED_MEDIA_TYPE",
            415,
            "not-supported",
            "Type de contenu non accepté : {detail}.",
        ),
        _k(
            "CONTROL_CHARACTER",
            400,
            "invalid",
            "Caractère de contrôle interdit ({detail}) : seuls la tabulation et les fins de ligne "
            "sont acceptés dans un texte.",
        ),
        _k(
            "TOO_MANY_ENTRIES",
            413,
            "too-costly",
            "Le Bundle dépasse le nombre maximal d'entrées autorisé ({detail}).",
        ),
        _k(
            "SUBMISSION_TOO_LARGE",
            413,
            "too-costly",
            "Les documents du Bundle dépassent ensemble la taille maximale autorisée ({detail}).",
        ),
        _k(
            "TOO_MANY_SEARCH_PARAMETERS",
            422,
            "too-costly",
            "La recherche dépasse le nombre maximal de paramètres autorisé ({detail}).",
        ),
        _k("INVALID_INS", 422, "value", "INS invalide : {detail}"),
        _k("INS_SYSTEM_NOT_ALLOWED", 422, "value", "Système d'identifiant patient non accepté : {detail}"),
        _k("IDENTITY_MISMATCH", 422, "business-rule", "Les traits d'identité ne concordent pas : {detail}"),
        _k("UNKNOWN_CODE", 422, "code-invalid", "Code inconnu : {detail}"),
        _k("MISSING_ELEMENT", 422, "required", "Élément obligatoire absent : {detail}"),
        _k("INVALID_VALUE", 422, "value", "Valeur invalide : {detail}"),
        _k(
            "HASH_MISMATCH",
            422,
            "value",
            "L'empreinte du document ne correspond pas à son contenu : {detail}",
        ),
        _k(
            "SIZE_MISMATCH",
            422,
            "value",
            "La taille déclarée du document ne correspond pas à son contenu : {detail}",
        ),
        _k(
            "DUPLICATE_UNIQUE_ID",
            409,
            "duplicate",
            "Un document portant cet identifiant unique existe déjà : {detail}",
        ),
        _k(
            "DOCUMENT_PATIENT_MISMATCH",
            422,
            "business-rule",
            "Le document ne concerne pas le patient du DMP visé : {detail}",
        ),
        _k(
            "DOCUMENT_TYPE_MISMATCH",
            422,
            "business-rule",
            "Le type du document ne correspond pas au type déclaré : {detail}",
        ),
        _k(
            "DOCUMENT_FORMAT_MISMATCH",
            422,
            "value",
            "Le contenu du document ne correspond pas au format déclaré : {detail}",
        ),
        _k(
            "UNRESOLVED_REFERENCE",
            422,
            "not-found",
            "Référence introuvable (ni contenue, ni dans le Bundle, ni sur le serveur) : {detail}",
        ),
        _k(
            "SUBMISSION_INCOHERENT",
            422,
            "business-rule",
            "La soumission comporte plusieurs incohérences, listées une par une : {detail}",
        ),
        _k("REPLACED_UNKNOWN", 422, "not-found", "Le document à remplacer est introuvable : {detail}"),
        _k("ALREADY_REPLACED", 409, "conflict", "Le document à remplacer a déjà été remplacé : {detail}"),
        _k(
            "DOCUMENT_TOO_LARGE",
            413,
            "too-costly",
            "Le document dépasse la taille maximale autorisée ({detail}).",
        ),
        _k(
            "REQUEST_TOO_LARGE",
            413,
            "too-costly",
            "La requête dépasse la taille maximale autorisée ({detail}).",
        ),
        _k("RECORD_EXISTS", 409, "duplicate", "Un DMP existe déjà pour cet INS : {detail}"),
        _k("RECORD_NOT_FOUND", 404, "not-found", "Aucun DMP accessible pour ce patient."),
        _k(
            "RECORD_CLOSED",
            409,
            "business-rule",
            "Le DMP de ce patient est fermé : aucune lecture ni écriture n'est possible. {detail}",
        ),
        _k("RECORD_NOT_CLOSED", 409, "business-rule", "Le DMP de ce patient n'est pas fermé."),
        _k(
            "CONSENT_REQUIRED",
            422,
            "business-rule",
            "Le consentement du patient à la création de son DMP doit être attesté : {detail}",
        ),
        _k("NOT_FOUND", 404, "not-found", "Ressource introuvable."),
        _k("METHOD_NOT_ALLOWED", 405, "not-supported", "Opération non autorisée : {detail}"),
        _k("INVALID_SEARCH", 400, "invalid", "Paramètre de recherche invalide : {detail}"),
        _k("INVALID_PATCH", 422, "invalid", "Modification de métadonnées invalide : {detail}"),
        _k("FORBIDDEN", 403, "forbidden", "Action non autorisée : {detail}"),
        _k(
            "TRANSACTION_FAILED",
            500,
            "exception",
            "La transaction a échoué ; aucune donnée n'a été enregistrée.",
        ),
        _k("AUTH_REQUIRED", 401, "login", "Authentification requise : {detail}"),
        _k("TOKEN_INVALID", 401, "security", "Jeton d'accès invalide : {detail}"),
        _k("TOKEN_EXPIRED", 401, "security", "Jeton d'accès expiré. Demandez un nouveau jeton."),
        _k("ASSERTION_INVALID", 401, "security", "Assertion d'authentification refusée : {detail}"),
        _k("CERTIFICATE_REVOKED", 401, "security", "Certificat de carte révoqué : {detail}"),
        _k("CERTIFICATE_INVALID", 401, "security", "Certificat de carte refusé : {detail}"),
        _k("ASSERTION_REPLAYED", 401, "security", "Assertion déjà utilisée (identifiant jti rejoué)."),
        _k("UNSUPPORTED_GRANT", 400, "invalid", "Demande de jeton invalide : {detail}"),
        _k("RATE_LIMITED", 429, "throttled", "Trop de tentatives. Réessayez dans {detail} secondes."),
        _k(
            "INTEGRITY_ERROR",
            500,
            "exception",
            "Le document stocké ne correspond plus à son empreinte ; l'exploitant a été alerté.",
        ),
        _k(
            "INTERNAL_ERROR",
            500,
            "exception",
            "Erreur interne du service ; aucune donnée n'a été enregistrée. "
            "Référence de l'incident : {detail}",
        ),
        _k("UNKNOWN_HOST", 400, "invalid", "Hôte inconnu de ce service : {detail}"),
        _k(
            "SERVICE_UNAVAILABLE",
            503,
            "transient",
            "Service momentanément indisponible (base de données injoignable) ; aucune donnée n'a été "
            "enregistrée. Réessayez dans quelques instants. Référence de l'incident : {detail}",
        ),
    )
}


class DmpError(Exception):
    """A refusal with a stable code; the API turns it into an OperationOutcome."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        expression: str | None = None,
        technical: str | None = None,
        issues: tuple[DmpError, ...] = (),
    ) -> None:
        kind = CATALOGUE[code]  # KeyError here is a programming error, on purpose
        self.kind = kind
        self.code = code
        self.detail = detail
        self.expression = expression
        # A third party's own (English) words, kept for the developer after the path in
        # OperationOutcome.issue.expression, never in the French text.
        self.technical = technical
        # Several faults refused together: one OperationOutcome.issue each (see ``several``).
        self.issues = issues
        self.status = kind.status
        self.message = kind.message.format(detail=detail).strip()
        # The trail entry of a refusal (dmp.services.trail.refused), written by the caller
        # in its own transaction since the action's transaction rolls back.
        self.audit_record: object | None = None
        super().__init__(f"{code}: {self.message}")

    @classmethod
    def several(cls, faults: list[DmpError]) -> DmpError:
        """One refusal carrying every fault, so the producer fixes them in one round trip."""
        if len(faults) == 1:
            return faults[0]
        return cls("SUBMISSION_INCOHERENT", f"{len(faults)} anomalies", issues=tuple(faults))
