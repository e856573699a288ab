"""The CapabilityStatement: what this server really does, and nothing more."""

from __future__ import annotations

from datetime import datetime

from dmp import __version__
from dmp.fhir import CANONICAL, FHIR_VERSION
from dmp.fhir.common import Json, instant
from dmp.fhir.searchparams import FACT_TYPES, SEARCH_PARAMETERS


def _params(resource_type: str) -> list[Json]:
    """The registry's parameters (dmp.fhir.searchparams), aliases named in their documentation."""
    return [
        {
            "name": p.name,
            "type": p.type,
            "documentation": p.documentation + (f" Alias : {', '.join(p.aliases)}." if p.aliases else ""),
        }
        for p in SEARCH_PARAMETERS[resource_type]
    ]


def capability_statement(base_url: str, token_url: str, started: datetime) -> Json:
    authorize_url = token_url.rsplit("/", 1)[0] + "/authorize"  # both under <base>/oauth/
    return {
        "resourceType": "CapabilityStatement",
        "url": f"{CANONICAL}/CapabilityStatement/dmp-server",
        "name": "DMPServer",
        "title": "Dossier Médical Partagé — serveur de partage de documents",
        "status": "active",
        "date": instant(started),
        "kind": "instance",
        "instantiates": [
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
        ],
        "software": {"name": "dmp", "version": __version__},
        "implementation": {"description": "DMP de référence (open source)", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "token", "valueUri": token_url},
                                {"url": "authorize", "valueUri": authorize_url},
                            ],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "SMART Backend Services : client_credentials avec assertion "
                    "private_key_jwt signée par la carte (certificat dans x5c) ; applications des "
                    "patients : code d'autorisation + PKCE (S256). Découverte : "
                    ".well-known/smart-configuration.",
                },
                "resource": [
                    {
                        "type": "DocumentReference",
                        "supportedProfile": [
                            "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"
                        ],
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "search-type"},
                            {"code": "patch"},
                            {"code": "create"},
                        ],
                        "conditionalUpdate": False,
                        "searchParam": _params("DocumentReference"),
                    },
                    {
                        "type": "List",
                        "supportedProfile": [
                            "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-submissionset-comprehensive"
                        ],
                        "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
                        "searchParam": _params("List"),
                    },
                    {"type": "Binary", "interaction": [{"code": "read"}, {"code": "vread"}]},
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": _params("AuditEvent"),
                    },
                    {
                        "type": "Consent",
                        "interaction": [{"code": "search-type"}, {"code": "create"}, {"code": "delete"}],
                        "searchParam": _params("Consent"),
                    },
                    {
                        "type": "Patient",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "search-type"},
                            {"code": "create"},
                        ],
                        "searchParam": _params("Patient"),
                        "operation": [
                            {
                                "name": "summary",
                                "definition": "http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
                            }
                        ],
                    },
                    # Clinical facts extracted from the documents, filtered as their source document.
                    *(
                        {"type": t, "interaction": [{"code": "search-type"}], "searchParam": _params(t)}
                        for t in FACT_TYPES
                    ),
                ],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
