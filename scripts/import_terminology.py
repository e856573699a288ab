#!/usr/bin/env python3
"""Import the CI-SIS value sets the DMP needs into ``src/dmp/terminology/data/``.

One-off, re-runnable script. It reads the published value sets copied under
``shared/terminology`` (FHIR ValueSet JSON, plus IHE SVS XML for the value sets
that exist only in that form) and writes one compact JSON file per value set::

    {"id": "J66", "name": "JDV_J66-TypeCode-DMP", "url": ..., "oid": ..., "version": ...,
     "title": ..., "concepts": [{"system": <FHIR url>, "oid": <code system OID>,
                                 "code": ..., "display": ...}]}

and ``systems.json``, the table of code systems (FHIR url, OID, NOS name, aliases)
that the run-time lookup uses to accept a system given as url, ``urn:oid:`` or OID.

Nothing at run time reads ``shared/``: the generated files are committed.

Usage: ``python scripts/import_terminology.py [SOURCE_DIR]`` (default: ``../shared/terminology``
relative to the repository root).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "terminology"
TARGET = REPO_ROOT / "src" / "dmp" / "terminology" / "data"

NOS = "https://mos.esante.gouv.fr/NOS"
SVS_NS = "{urn:ihe:iti:svs:2008}"


def _nos(name: str) -> str:
    """FHIR canonical url of a NOS code system, e.g. TRE_A03-ClasseDocument."""
    return f"{NOS}/{name}/FHIR/{name.replace('_', '-')}"


@dataclass(frozen=True)
class CodeSystem:
    name: str
    url: str
    oid: str  # OID, or the literal XDS codingScheme (``URN``, ``ASTM``) when the NOS gives none
    aliases: tuple[str, ...] = ()


# Every code system used by a shipped value set. OIDs: technical reference §1.6, §3, §4 and
# the NOS CodeSystem definitions (ansforge/IG-terminologie-de-sante, ``^identifier.value``).
CODE_SYSTEMS: tuple[CodeSystem, ...] = (
    CodeSystem("LOINC", "http://loinc.org", "2.16.840.1.113883.6.1"),
    CodeSystem("TRE_A00-ProducteurDocNonPS", _nos("TRE_A00-ProducteurDocNonPS"), "1.2.250.1.213.1.1.4.6"),
    CodeSystem("TRE_A01-CadreExercice", _nos("TRE_A01-CadreExercice"), "1.2.250.1.213.1.1.4.9"),
    CodeSystem(
        "TRE_A02-ProfessionSavFaire-CISIS", _nos("TRE_A02-ProfessionSavFaire-CISIS"), "1.2.250.1.213.1.1.4.5"
    ),
    CodeSystem("TRE_A03-ClasseDocument", _nos("TRE_A03-ClasseDocument"), "1.2.250.1.213.1.1.4.1"),
    CodeSystem(
        "TRE_A05-TypeDocComplementaire", _nos("TRE_A05-TypeDocComplementaire"), "1.2.250.1.213.1.1.4.12"
    ),
    CodeSystem(
        "TRE_A06-FormatCodeComplementaire",
        _nos("TRE_A06-FormatCodeComplementaire"),
        "1.2.250.1.213.1.1.4.2.282",
    ),
    CodeSystem(
        "TRE_A07-StatutVisibiliteDocument", _nos("TRE_A07-StatutVisibiliteDocument"), "1.2.250.1.213.1.1.4.13"
    ),
    CodeSystem(
        "TRE_A08-HL7Confidentiality",
        _nos("TRE_A08-HL7Confidentiality"),
        "2.16.840.1.113883.5.25",
        ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality",),
    ),
    CodeSystem("TRE_A09-DICOMuidRegistry", _nos("TRE_A09-DICOMuidRegistry"), "1.2.840.10008.2.6.1"),
    CodeSystem("TRE_A10-NomenclatureURN", _nos("TRE_A10-NomenclatureURN"), "URN"),
    CodeSystem("TRE_A11-IheFormatCode", _nos("TRE_A11-IheFormatCode"), "1.3.6.1.4.1.19376.1.2.3"),
    CodeSystem("TRE_A12-NomenclatureASTM", _nos("TRE_A12-NomenclatureASTM"), "ASTM"),
    CodeSystem("TRE_G15-ProfessionSante", _nos("TRE_G15-ProfessionSante"), "1.2.250.1.71.1.2.7"),
    CodeSystem("TRE_G16-ProfessionFormation", _nos("TRE_G16-ProfessionFormation"), "1.2.250.1.71.1.2.8"),
    CodeSystem(
        "TRE_R01-EnsembleSavoirFaire-CISIS", _nos("TRE_R01-EnsembleSavoirFaire-CISIS"), "1.2.250.1.71.4.2.5"
    ),
    CodeSystem("TRE_R02-SecteurActivite", _nos("TRE_R02-SecteurActivite"), "1.2.250.1.71.4.2.4"),
    CodeSystem("TRE_R85-RolePriseCharge", _nos("TRE_R85-RolePriseCharge"), "1.2.250.1.213.1.6.1.107"),
    CodeSystem("TRE_R94-ProfessionSocial", _nos("TRE_R94-ProfessionSocial"), "1.2.250.1.213.1.6.1.4"),
    CodeSystem("TRE_R95-UsagerTitre", _nos("TRE_R95-UsagerTitre"), "1.2.250.1.213.1.6.1.109"),
    CodeSystem("TRE_R209-TypeActivite", _nos("TRE_R209-TypeActivite"), "1.2.250.1.213.2.2"),
    CodeSystem("TRE_R248-ModeAcces", _nos("TRE_R248-ModeAcces"), "1.2.250.1.213.1.1.4.248"),
    CodeSystem(
        "TRE_R258-RelationPriseCharge", _nos("TRE_R258-RelationPriseCharge"), "1.2.250.1.213.1.1.4.2.280"
    ),
    CodeSystem(
        "TRE_R259-HL7ParticipationFunction",
        _nos("TRE_R259-HL7ParticipationFunction"),
        "2.16.840.1.113883.5.88",
        ("http://terminology.hl7.org/CodeSystem/v3-ParticipationFunction",),
    ),
    CodeSystem(
        "TRE_R269-AvailabilityStatusProvenanceOasis",
        _nos("TRE_R269-AvailabilityStatusProvenanceOasis"),
        "1.2.250.1.213.1.1.4.341",
    ),
    CodeSystem("TRE_R270-AvailabilityStatus", _nos("TRE_R270-AvailabilityStatus"), "1.2.250.1.213.1.1.4.342"),
    CodeSystem("TRE_R276-FormeActivite", _nos("TRE_R276-FormeActivite"), "1.2.250.1.213.1.6.1.128"),
    CodeSystem("TRE_R291-AutreProfession", _nos("TRE_R291-AutreProfession"), "1.2.250.1.213.1.6.1.140"),
)
BY_URL = {cs.url: cs for cs in CODE_SYSTEMS}
BY_OID = {cs.oid: cs for cs in CODE_SYSTEMS}


@dataclass(frozen=True)
class Source:
    id: str
    path: str  # relative to the source directory
    note: str | None = None
    partial: bool = False


SOURCES: tuple[Source, ...] = (
    Source("J57", "valuesets/ValueSet-JDV-J57-ClassCode-DMP.json"),
    Source(
        "J66",
        "valuesets/ValueSet-JDV-J66-TypeCode-DMP.json",
        note="Version 2024-09-27, the latest DMP list found; J07 (CI-SIS, 2026) has newer codes.",
    ),
    Source(
        "J07",
        "valuesets/ValueSet-JDV-J07-XdsTypeCode-CISIS.json",
        note="CI-SIS list, for information: DMP documents are checked against J66.",
    ),
    Source("J60", "valuesets/ValueSet-JDV-J60-FormatCode-DMP.json"),
    Source("J61", "valuesets/ValueSet-JDV-J61-HealthcareFacilityTypeCode-DMP.json"),
    Source(
        "J04",
        "valuesets/ValueSet-JDV-J04-XdsPracticeSettingCode-CISIS.json",
        note="Stands in for JDV_J62-PracticeSettingCode-DMP, whose content is not published "
        "in the sources available (assumed to be a subset of J04).",
    ),
    Source("J58", "valuesets/ValueSet-JDV-J58-ConfidentialityCode-DMP.json"),
    Source("J59", "valuesets/ValueSet-JDV-J59-ContentTypeCode-DMP.json"),
    Source("J52", "valuesets/ValueSet-JDV-J52-AvailabilityStatus-CISIS.json"),
    Source(
        "J38",
        "valuesets/ValueSet-JDV-J38-ModeAcces-CISIS.json",
        note="The published value set OID (1.2.250.1.213.1.1.4.336) is known to be wrong "
        "(NOS issue #903); kept as published.",
    ),
    Source(
        "J65",
        "valuesets/ValueSet-JDV-J65-SubjectRole-DMP.PARTIAL.json",
        partial=True,
        note="PARTIAL extract: the TRE_R01 savoir-faire include was truncated to 3 codes.",
    ),
    Source("J47", "valuesets/svs-TestContenuCDA-3-0/JDV_J47_FunctionCode_CISIS.xml"),
    Source("J01", "valuesets/svs-TestContenuCDA-3-0/JDV_J01_XdsAuthorSpecialty_CISIS.xml"),
)


class ImportError_(Exception):
    pass


def _oid_of(identifiers: list[dict[str, Any]]) -> str:
    for ident in identifiers:
        value = str(ident.get("value", ""))
        if value.startswith("urn:oid:"):
            return value.removeprefix("urn:oid:")
    raise ImportError_("value set without an OID identifier")


def _name_from_url(url: str) -> str:
    # https://mos.esante.gouv.fr/NOS/JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP
    parts = url.split("/")
    if "NOS" in parts:
        return parts[parts.index("NOS") + 1]
    return parts[-1]


def _concept(system: CodeSystem, code: str, display: str) -> dict[str, str]:
    return {"system": system.url, "oid": system.oid, "code": code, "display": display}


def read_fhir(src: Source, path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") != "ValueSet":
        raise ImportError_(f"{path}: not a ValueSet")
    concepts: list[dict[str, str]] = []
    for include in data["compose"]["include"]:
        url = include["system"]
        if url not in BY_URL:
            raise ImportError_(f"{path}: unknown code system {url}; add it to CODE_SYSTEMS")
        if "valueSet" in include or "filter" in include or "concept" not in include:
            raise ImportError_(f"{path}: include of {url} is not an enumeration")
        for c in include["concept"]:
            concepts.append(_concept(BY_URL[url], c["code"], c.get("display", "")))
    if data["compose"].get("exclude"):
        raise ImportError_(f"{path}: exclude is not supported")
    return {
        "id": src.id,
        "name": _name_from_url(data["url"]),
        "url": data["url"],
        "oid": _oid_of(data.get("identifier", [])),
        "version": data.get("version", ""),
        "title": data.get("title") or data.get("description") or data.get("name", ""),
        "concepts": concepts,
    }


def read_svs(src: Source, path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()  # noqa: S314 - local, trusted reference file
    vs = root.find(f"{SVS_NS}ValueSet")
    if vs is None:
        raise ImportError_(f"{path}: no SVS ValueSet")
    name = vs.get("urlFichier", "").rstrip("/").split("/")[-1]
    if not name.startswith("JDV_"):
        raise ImportError_(f"{path}: cannot derive the value set name")
    concepts: list[dict[str, str]] = []
    for c in vs.iter(f"{SVS_NS}Concept"):
        oid = c.get("codeSystem", "")
        if oid not in BY_OID:
            raise ImportError_(f"{path}: unknown code system OID {oid}; add it to CODE_SYSTEMS")
        concepts.append(_concept(BY_OID[oid], c.get("code", ""), c.get("displayName", "")))
    return {
        "id": src.id,
        "name": name,
        "url": _nos(name),
        "oid": vs.get("id", ""),
        "version": vs.get("dateMaj", ""),
        "title": vs.get("description", ""),
        "concepts": concepts,
    }


def build(source_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for src in SOURCES:
        path = source_dir / src.path
        doc = read_svs(src, path) if path.suffix == ".xml" else read_fhir(src, path)
        seen: set[tuple[str, str]] = set()
        for c in doc["concepts"]:
            key = (c["oid"], c["code"])
            if not c["code"] or key in seen:
                raise ImportError_(f"{path}: empty or duplicate code {key}")
            seen.add(key)
        if src.partial:
            doc["partial"] = True
        if src.note:
            doc["note"] = src.note
        doc["source"] = src.path
        out[src.id] = doc
    return out


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one concept per line: small, and readable in a diff."""
    head = {k: v for k, v in doc.items() if k != "concepts"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "concepts": [']
    concepts = [json.dumps(c, ensure_ascii=False) for c in doc["concepts"]]
    lines.append(",\n".join(concepts))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help="shared/terminology directory (default: %(default)s)",
    )
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    try:
        docs = build(args.source)
    except (ImportError_, OSError, KeyError, ET.ParseError) as exc:
        print(f"import_terminology: {exc}", file=sys.stderr)
        return 1
    target: Path = args.target
    target.mkdir(parents=True, exist_ok=True)
    for vs_id, doc in docs.items():
        (target / f"{vs_id}.json").write_text(_dump(doc), encoding="utf-8")
        print(f"{vs_id}: {len(doc['concepts'])} concepts ({doc['name']} v{doc['version']})")
    used = {c["oid"] for doc in docs.values() for c in doc["concepts"]}
    systems = [
        {"name": cs.name, "url": cs.url, "oid": cs.oid, "aliases": list(cs.aliases)}
        for cs in CODE_SYSTEMS
        if cs.oid in used
    ]
    (target / "systems.json").write_text(
        json.dumps(systems, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"systems: {len(systems)} code systems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
