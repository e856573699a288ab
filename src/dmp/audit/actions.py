"""What the trail records: action codes, outcomes, access modes, and how each reads.

The codes are stored in ``audit_entry.action`` and never change once published (an
old entry must still verify and display). Each action carries its French label, the
phrase of the patient's "historique des accès", and its FHIR AuditEvent coding
(IHE BALP style: type, subtype = FHIR restful interaction and/or IHE transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class AuditAction(StrEnum):
    RECORD_READ = "record.read"  # GET Patient/<id>
    RECORD_CHECK = "record.check"  # TD0.2: does a record exist for this INS
    RECORD_SEARCH = "record.search"  # ITI-67 search of DocumentReferences
    SUBMISSION_SEARCH = "submission.search"  # ITI-66 search of submission sets
    DOCUMENT_READ = "document.read"  # GET DocumentReference/<id> (metadata)
    DOCUMENT_RETRIEVE = "document.retrieve"  # ITI-68 (the document itself)
    DOCUMENT_PUBLISH = "document.publish"  # ITI-65
    DOCUMENT_REPLACE = "document.replace"  # ITI-65 with a replacement
    DOCUMENT_MASK = "document.mask"  # masked from professionals
    DOCUMENT_UNMASK = "document.unmask"
    DOCUMENT_STATUS = "document.status"  # any other metadata/visibility/status change
    DOCUMENT_ARCHIVE = "document.archive"
    DOCUMENT_DELETE = "document.delete"
    CONSENT_CHANGE = "consent.change"  # authorisation, block, médecin traitant, emergency consents
    CONSENT_READ = "consent.read"  # GET Consent: who is authorised or blocked
    RECORD_CREATE = "record.create"
    RECORD_CLOSE = "record.close"
    RECORD_REACTIVATE = "record.reactivate"
    BREAK_GLASS = "access.break_glass"
    CENTRE_15 = "access.centre15"
    PATIENT_LOGIN = "patient.login"
    ACCESS_REFUSED = "access.refused"
    AUDIT_READ = "audit.read"  # someone read this trail (history, AuditEvent search, export)
    REPRESENTATIVE_ADD = "representative.add"  # desk: a legal representative of a minor declared
    REPRESENTATIVE_REMOVE = "representative.remove"  # desk: a representative's access ended
    REPRESENTATIVE_END_AT_MAJORITY = "representative.end_at_majority"  # system: the holder is 18
    MAJORITY_CONFIRMED = "record.majority_confirmed"  # the holder, of age, keeps the record (LC-08)
    MAJORITY_REFUSED = "record.majority_refused"  # the holder, of age, refuses it: it is closed
    RECORD_EXPORT = "record.export"  # CS-06 « tout télécharger »: the archive of the visible record
    RECORD_SUMMARY_PDF = "record.summary_pdf"  # CS-06: the printable summary of the visible record


class Outcome(StrEnum):
    SUCCESS = "success"
    REFUSED = "refused"
    ERROR = "error"


class AccessMode(StrEnum):
    """CI-SIS access modes (TRE_R248) plus the patient's and representatives' own access.

    The values are those of ``dmp.policy.AccessMode``: a policy decision's mode can be
    stored as is.
    """

    NORMAL = "normal"
    MEDECIN_TRAITANT = "medecin_traitant"
    BRIS_DE_GLACE = "bris_de_glace"
    CENTRE_15 = "centre_15"
    PATIENT = "patient"
    REPRESENTATIVE = "representant_legal"


ACCESS_MODE_LABELS: MappingProxyType[str, str] = MappingProxyType(
    {
        AccessMode.NORMAL: "accès normal",
        AccessMode.MEDECIN_TRAITANT: "accès en tant que médecin traitant",
        AccessMode.BRIS_DE_GLACE: "accès en bris de glace",
        AccessMode.CENTRE_15: "accès par le centre de régulation (centre 15)",
        AccessMode.PATIENT: "accès du patient",
        AccessMode.REPRESENTATIVE: "accès du représentant légal",
    }
)

# FHIR AuditEvent.type codings
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
IHE_EVENT_TYPE = "urn:ihe:event-type-code"

TYPE_REST = (AUDIT_EVENT_TYPE, "rest", "Restful Operation")
TYPE_PATIENT_RECORD = (DCM, "110110", "Patient Record")
TYPE_USER_AUTHENTICATION = (DCM, "110114", "User Authentication")
TYPE_SECURITY_ALERT = (DCM, "110113", "Security Alert")
TYPE_EXPORT = (DCM, "110106", "Export")

ITI = {
    "ITI-65": "Provide Document Bundle",
    "ITI-66": "Find Document Lists",
    "ITI-67": "Find Document References",
    "ITI-68": "Retrieve Document",
}


@dataclass(frozen=True, slots=True)
class ActionInfo:
    label: str  # French noun phrase: "Consultation d'un document"
    one: str  # French past tense, one target (or none): "a consulté un document"
    many: str  # French past tense, {n} targets: "a consulté {n} documents"
    fhir_action: str  # AuditEvent.action: C | R | U | D | E
    type: tuple[str, str, str]  # AuditEvent.type (system, code, display)
    interaction: str | None = None  # FHIR restful-interaction subtype
    transaction: str | None = None  # IHE transaction subtype (ITI-6x)
    dicom_subtype: tuple[str, str] | None = None  # DICOM event id subtype (code, display)

    def phrase(self, n: int) -> str:
        return self.many.format(n=n) if n > 1 else self.one


def _i(label: str, one: str, many: str | None, action: str, type_: tuple[str, str, str],
       interaction: str | None = None, transaction: str | None = None,
       dicom_subtype: tuple[str, str] | None = None) -> ActionInfo:
    return ActionInfo(label, one, many or one, action, type_, interaction, transaction, dicom_subtype)


A = AuditAction
ACTIONS: MappingProxyType[AuditAction, ActionInfo] = MappingProxyType(
    {
        A.RECORD_READ: _i("Consultation du dossier", "a consulté le dossier", None, "R", TYPE_REST, "read"),
        A.RECORD_CHECK: _i(
            "Vérification de l'existence du dossier", "a vérifié l'existence du dossier", None, "R",
            TYPE_REST, "search-type",
        ),
        A.RECORD_SEARCH: _i(
            "Recherche de documents", "a recherché des documents (1 résultat)",
            "a recherché des documents ({n} résultats)", "R", TYPE_REST, "search-type", "ITI-67",
        ),
        A.SUBMISSION_SEARCH: _i(
            "Recherche de lots de soumission", "a recherché des lots de documents", None, "R",
            TYPE_REST, "search-type", "ITI-66",
        ),
        A.DOCUMENT_READ: _i(
            "Consultation de la description d'un document", "a consulté la description d'un document",
            "a consulté la description de {n} documents", "R", TYPE_REST, "read", "ITI-67",
        ),
        A.DOCUMENT_RETRIEVE: _i(
            "Consultation d'un document", "a consulté un document", "a consulté {n} documents", "R",
            TYPE_REST, "read", "ITI-68",
        ),
        A.DOCUMENT_PUBLISH: _i(
            "Ajout de document", "a ajouté un document", "a ajouté {n} documents", "C", TYPE_REST,
            "create", "ITI-65",
        ),
        A.DOCUMENT_REPLACE: _i(
            "Remplacement de document", "a remplacé un document", "a remplacé {n} documents", "C",
            TYPE_REST, "create", "ITI-65",
        ),
        A.DOCUMENT_MASK: _i(
            "Masquage de document aux professionnels", "a masqué un document aux professionnels",
            "a masqué {n} documents aux professionnels", "U", TYPE_REST, "patch",
        ),
        A.DOCUMENT_UNMASK: _i(
            "Fin du masquage de document", "a rendu visible un document aux professionnels",
            "a rendu visibles {n} documents aux professionnels", "U", TYPE_REST, "patch",
        ),
        A.DOCUMENT_STATUS: _i(
            "Modification du statut de document", "a modifié le statut d'un document",
            "a modifié le statut de {n} documents", "U", TYPE_REST, "patch",
        ),
        A.DOCUMENT_ARCHIVE: _i(
            "Archivage de document", "a archivé un document", "a archivé {n} documents", "U", TYPE_REST,
            "patch",
        ),
        A.DOCUMENT_DELETE: _i(
            "Suppression de document", "a supprimé un document", "a supprimé {n} documents", "D",
            TYPE_REST, "patch",
        ),
        A.CONSENT_CHANGE: _i(
            "Modification des autorisations d'accès", "a modifié les autorisations d'accès au dossier",
            None, "U", TYPE_PATIENT_RECORD, "update",
        ),
        A.CONSENT_READ: _i(
            "Consultation des autorisations d'accès", "a consulté les autorisations d'accès au dossier",
            None, "R", TYPE_REST, "search-type",
        ),
        A.RECORD_CREATE: _i("Création du dossier", "a créé le dossier", None, "C", TYPE_PATIENT_RECORD,
                            "create"),
        A.RECORD_CLOSE: _i("Fermeture du dossier", "a fermé le dossier", None, "U", TYPE_PATIENT_RECORD,
                           "update"),
        A.RECORD_REACTIVATE: _i("Réactivation du dossier", "a réactivé le dossier", None, "U",
                                TYPE_PATIENT_RECORD, "update"),
        A.BREAK_GLASS: _i(
            "Accès en urgence (bris de glace)", "a ouvert un accès d'urgence au dossier", None, "E",
            TYPE_SECURITY_ALERT, dicom_subtype=("110127", "Emergency Override Started"),
        ),
        A.CENTRE_15: _i(
            "Accès par le centre de régulation (centre 15)",
            "a accédé au dossier depuis le centre de régulation", None, "E", TYPE_PATIENT_RECORD,
        ),
        A.PATIENT_LOGIN: _i(
            "Connexion à l'espace patient", "s'est connecté(e) à l'espace DMP", None, "E",
            TYPE_USER_AUTHENTICATION, dicom_subtype=("110122", "Login"),
        ),
        A.ACCESS_REFUSED: _i("Accès refusé", "s'est vu refuser l'accès au dossier", None, "E", TYPE_REST),
        A.AUDIT_READ: _i(
            "Consultation de l'historique des accès", "a consulté l'historique des accès", None, "R",
            TYPE_REST, "search-type",
        ),
        A.REPRESENTATIVE_ADD: _i(
            "Déclaration d'un représentant légal", "a déclaré un représentant légal du titulaire du dossier",
            "a déclaré {n} représentants légaux du titulaire du dossier", "C", TYPE_PATIENT_RECORD, "create",
        ),
        A.REPRESENTATIVE_REMOVE: _i(
            "Retrait d'un représentant légal", "a retiré l'accès d'un représentant légal au dossier",
            "a retiré l'accès de {n} représentants légaux au dossier", "U", TYPE_PATIENT_RECORD, "update",
        ),
        A.REPRESENTATIVE_END_AT_MAJORITY: _i(
            "Fin de l'accès des représentants légaux à la majorité",
            "a mis fin à l'accès du représentant légal au dossier (majorité du titulaire)",
            "a mis fin à l'accès de {n} représentants légaux au dossier (majorité du titulaire)", "U",
            TYPE_PATIENT_RECORD, "update",
        ),
        A.MAJORITY_CONFIRMED: _i(
            "Confirmation du dossier à la majorité", "a confirmé la poursuite du dossier à sa majorité",
            None, "U", TYPE_PATIENT_RECORD, "update",
        ),
        A.MAJORITY_REFUSED: _i(
            "Refus du dossier à la majorité", "a refusé la poursuite du dossier à sa majorité", None,
            "U", TYPE_PATIENT_RECORD, "update",
        ),
        A.RECORD_EXPORT: _i(
            "Téléchargement du dossier", "a téléchargé le dossier",
            "a téléchargé le dossier ({n} documents)", "R", TYPE_EXPORT,
        ),
        A.RECORD_SUMMARY_PDF: _i(
            "Téléchargement du résumé imprimable", "a téléchargé le résumé imprimable du dossier", None,
            "R", TYPE_EXPORT,
        ),
    }
)

_UNKNOWN_PHRASE = "a effectué une action sur le dossier"


def action_info(code: str) -> ActionInfo:
    """The description of an action code; an unknown (newer) code still renders."""
    try:
        return ACTIONS[AuditAction(code)]
    except ValueError:
        return ActionInfo(f"Action « {code} »", _UNKNOWN_PHRASE, _UNKNOWN_PHRASE, "E", TYPE_REST)
