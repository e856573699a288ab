"""A real HTTP round trip against a running ``dmp serve``, as a professional's software does it.

Run with the interpreter of an install *without extras* (scripts/smoke_install): it uses only
the standard library, the ``dmp`` command and the installed package, so it proves what a user's
install can do.

    python scripts/smoke_roundtrip.py --base http://127.0.0.1:8080 --card var/demo/cards/dr-muller

Steps: token with the card (SMART Backend Services), record creation (TD1, POST /fhir/Patient),
ITI-65 publication of a CDA naming that patient (built with the
installed package's own bundle builders), ITI-67 search finding it, ITI-68 retrieval of
the identical bytes, the CapabilityStatement, the portal login page, and a 404 that is an
OperationOutcome. Exit code 1 with the failing step on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

NIR = "urn:oid:1.2.250.1.213.1.4.8"
FHIR_JSON = "application/fhir+json"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def step(label: str) -> None:
    print(f"  · {label}", flush=True)


def fail(message: str) -> None:
    print(f"ÉCHEC : {message}", file=sys.stderr)
    sys.exit(1)


def http(method: str, url: str, token: str | None = None, body: Any = None, accept: str = FHIR_JSON) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback URL given by the caller)
    req.add_header("Accept", accept)
    if data is not None:
        req.add_header("Content-Type", FHIR_JSON)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def expect(reply: Reply, status: int, what: str) -> Reply:
    if reply.status != status:
        fail(f"{what} : HTTP {reply.status} au lieu de {status} : {reply.body[:600]!r}")
    return reply


def nir_key(first13: str) -> str:
    digits = first13.replace("2A", "19").replace("2B", "18")
    return f"{97 - int(digits) % 97:02d}"


def new_nir() -> str:
    first13 = f"2800575056{random.randint(100, 999)}"  # noqa: S311 (test data)
    return first13 + nir_key(first13)


def patient(nir: str) -> dict[str, Any]:
    """The TD1 creation request: INS, strict traits, the desk's consent attestation."""
    from dmp.fhir.patient import BIRTH_PLACE_URL, CREATION_CONSENT_URL, INSEE_CODE_URL

    consent = {
        "resourceType": "Consent",
        "id": "creation",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "dateTime": "2026-11-23T09:30:00+01:00",
        "policyRule": {"coding": [{"system": "https://dmp.example.org/fhir/CodeSystem/dmp-consent-policy",
                                   "code": "creation-dmp"}]},
    }
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NIR, "value": nir}],
        "name": [{"use": "official", "family": "ESSAI", "given": ["Camille"]}],
        "gender": "female",
        "birthDate": "1980-05-17",
        "contained": [consent],
        "extension": [
            {
                "url": BIRTH_PLACE_URL,
                "valueAddress": {"extension": [{"url": INSEE_CODE_URL, "valueCoding": {"code": "75056"}}]},
            },
            {"url": CREATION_CONSENT_URL, "valueReference": {"reference": "#creation"}},
        ],
    }


def cda(nir: str, unique_id: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <id root="{unique_id}"/>
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="Note de consultation"/>
  <title>Compte rendu de consultation (essai d'installation)</title>
  <effectiveTime value="20261120100000+0100"/>
  <recordTarget><patientRole><id root="1.2.250.1.213.1.4.8" extension="{nir}"/>
    <patient><name><given>Camille</given><family>ESSAI</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19800517"/></patient></patientRole></recordTarget>
  <component><nonXMLBody><text mediaType="text/plain">Examen normal.</text></nonXMLBody></component>
</ClinicalDocument>""".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--card", required=True)
    args = parser.parse_args()
    base = args.base.rstrip("/")
    fhir = f"{base}/fhir"

    step("CapabilityStatement")
    cap = expect(http("GET", f"{fhir}/metadata"), 200, "GET /fhir/metadata").json()
    if cap.get("resourceType") != "CapabilityStatement" or cap.get("fhirVersion") != "4.0.1":
        fail(f"CapabilityStatement inattendu : {cap.get('resourceType')} {cap.get('fhirVersion')}")

    step("jeton d'accès avec la carte (dmp client-token)")
    token = subprocess.run(
        ["dmp", "client-token", "--card", args.card, "--url", base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    step("création du dossier (POST /fhir/Patient)")
    nir = new_nir()
    created = expect(http("POST", f"{fhir}/Patient", token, patient(nir)), 201, "POST /fhir/Patient").json()
    if created.get("resourceType") != "Patient":
        fail(f"création : {created}")

    step("publication ITI-65 (POST /fhir)")
    unique_id = f"1.2.250.1.999.{uuid.uuid4().int % 10**15}"
    content = cda(nir, unique_id)
    bundle = transaction(nir, unique_id, content)
    published = expect(http("POST", fhir, token, bundle), 200, "ITI-65").json()
    if published.get("type") != "transaction-response":
        fail(f"ITI-65 : réponse {published.get('type')}")

    step("recherche ITI-67")
    query = urllib.parse.urlencode({"patient.identifier": f"{NIR}|{nir}", "status": "current"})
    found = expect(http("GET", f"{fhir}/DocumentReference?{query}", token), 200, "ITI-67").json()
    urls = [
        e["resource"]["content"][0]["attachment"]["url"]
        for e in found.get("entry", [])
        if e["resource"]["masterIdentifier"]["value"] == f"urn:oid:{unique_id}"
    ]
    if len(urls) != 1:
        fail(f"ITI-67 : le document publié n'est pas trouvé ({len(found.get('entry', []))} résultats)")

    step("récupération ITI-68")
    url = urls[0] if urls[0].startswith("http") else f"{fhir}/{urls[0]}"
    got = expect(http("GET", url, token, accept="*/*"), 200, "ITI-68")
    if hashlib.sha256(got.body).digest() != hashlib.sha256(content).digest():
        fail("ITI-68 : les octets récupérés diffèrent des octets publiés")

    step("page de connexion du portail patient")
    page = expect(http("GET", f"{base}/connexion", accept="text/html"), 200, "GET /connexion")
    if "text/html" not in page.headers.get("content-type", "") or "lang=\"fr\"" not in page.body.decode():
        fail("le portail ne répond pas une page HTML en français")

    step("ressource inconnue : OperationOutcome")
    missing = expect(http("GET", f"{fhir}/DocumentReference/{uuid.uuid4()}", token), 404, "lecture inconnue")
    if missing.json().get("resourceType") != "OperationOutcome":
        fail("une 404 n'est pas un OperationOutcome")
    print("Aller-retour HTTP réussi : création, ITI-65, ITI-67, ITI-68.")


def transaction(nir: str, unique_id: str, content: bytes) -> dict[str, Any]:
    """An ITI-65 Bundle (SubmissionSet + DocumentReference + Binary) from the shipped builders."""
    from dmp.demo.bundles import document_reference, provide_bundle

    docref = document_reference(
        content,
        ins_system=NIR,
        ins_value=nir,
        unique_id=unique_id,
        type_code="11488-4",
        title="Compte rendu de consultation (essai d'installation)",
        date="2026-11-20T10:00:00+01:00",
        author_idnps="810001234565",
        author_name="Charles MULLER",
        binary_url=f"urn:uuid:{uuid.uuid4()}",
    )
    return provide_bundle([(docref, content)], ins_system=NIR, ins_value=nir)


if __name__ == "__main__":
    main()
