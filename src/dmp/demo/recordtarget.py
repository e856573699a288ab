"""Rewrite a demo CDA's header for the record it is published into.

The ANS examples all describe one test patient (Dominique PAT-TROIS). The demo publishes them
into many records, so each copy's recordTarget (INS and local identifiers, name, sex, birth
date, birthplace, address, contact, guardian) and its ClinicalDocument/id and setId are
rewritten for its patient: no record carries a document naming somebody else. Client-side
tool like ``dmp.demo.bundles``; the server never rewrites what a producer sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from dmp.cda import hardened_parser
from dmp.domain.identity import Sex, StrictTraits
from dmp.domain.ins import OID_NIA, OID_NIR, TEST_OIDS, Ins

V3 = "urn:hl7-org:v3"
NS = {"cda": V3}
# Comments are kept (the ANS examples explain themselves); those of the rewritten header are dropped.
_PARSER = hardened_parser(keep_comments=True)
INS_ROOTS = frozenset({OID_NIR, OID_NIA, *TEST_OIDS})
_GENDER = {Sex.FEMALE: ("F", "Féminin"), Sex.MALE: ("M", "Masculin"), Sex.UNKNOWN: ("U", "Inconnu")}


@dataclass(frozen=True)
class Place:
    city: str
    postal_code: str


@dataclass(frozen=True)
class Guardian:
    given: str
    family: str
    email: str


@dataclass(frozen=True)
class Target:
    """The record a copy is published into, and what makes its document ids unique."""

    ins: Ins
    traits: StrictTraits
    id_suffix: str  # appended to ClinicalDocument/id and setId roots (an OID arc)
    place: Place | None = None  # birthplace, also used as the (city-level) address
    guardian: Guardian | None = None


def _q(tag: str) -> str:
    return f"{{{V3}}}{tag}"


def _child(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, _q(tag), attrs)
    if text is not None:
        el.text = text
    return el


def for_patient(content: bytes, target: Target) -> bytes:
    """The document ``content`` as published into ``target``'s record (UTF-8 XML)."""
    root = etree.fromstring(content, _PARSER)
    role = root.find("cda:recordTarget/cda:patientRole", NS)
    patient = role.find("cda:patient", NS) if role is not None else None
    if role is None or patient is None:
        raise ValueError("document CDA sans recordTarget/patientRole/patient")
    for comment in role.iter(etree.Comment):
        parent = comment.getparent()
        if parent is not None:
            parent.remove(comment)
    _rewrite_document_ids(root, target.id_suffix)
    _rewrite_role_ids(role, target.ins)
    _rewrite_address_and_telecom(role, patient, target)
    _rewrite_name(patient, target.traits)
    code, display = _GENDER[target.traits.sex]
    gender = patient.find("cda:administrativeGenderCode", NS)
    if gender is not None:
        gender.set("code", code)
        gender.set("displayName", display)
    birth = patient.find("cda:birthTime", NS)
    if birth is not None:
        birth.set("value", f"{target.traits.birth_date:%Y%m%d}")
    _rewrite_guardian(patient, target.guardian)
    _rewrite_birthplace(patient, target)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _rewrite_document_ids(root: etree._Element, suffix: str) -> None:
    for path in ("cda:id", "cda:setId"):
        el = root.find(path, NS)
        if el is not None and el.get("root"):
            el.set("root", f"{el.get('root')}.{suffix}")


def _rewrite_role_ids(role: etree._Element, ins: Ins) -> None:
    """The INS becomes the record's; any other (local) identifier is made the patient's own."""
    for el in role.findall("cda:id", NS):
        if el.get("root") in INS_ROOTS:
            el.set("root", ins.oid)
            el.set("extension", ins.value)
        elif el.get("extension"):
            el.set("extension", f"DEMO{ins.value}")


def _rewrite_address_and_telecom(role: etree._Element, patient: etree._Element, target: Target) -> None:
    for el in role.findall("cda:addr", NS) + role.findall("cda:telecom", NS):
        role.remove(el)
    at = list(role).index(patient)
    items: list[etree._Element] = []
    if target.place is not None:
        addr = etree.Element(_q("addr"))
        _child(addr, "postalCode", target.place.postal_code)
        _child(addr, "city", target.place.city.upper())
        _child(addr, "country", "FRANCE")
        items.append(addr)
    # The patient's MSSanté mailbox is named after the INS matricule.
    items.append(etree.Element(_q("telecom"), {"value": f"mailto:{target.ins.value}@patient.mssante.fr"}))
    for offset, el in enumerate(items):
        role.insert(at + offset, el)


def _rewrite_name(patient: etree._Element, traits: StrictTraits) -> None:
    name = patient.find("cda:name", NS)
    if name is None:
        name = etree.Element(_q("name"))
        patient.insert(0, name)
    for el in list(name):
        name.remove(el)
    name.text = None
    first = traits.birth_given_names[0]
    _child(name, "family", traits.birth_family_name, qualifier="BR")
    _child(name, "given", " ".join(traits.birth_given_names))
    _child(name, "given", first, qualifier="BR")
    _child(name, "family", traits.birth_family_name, qualifier="CL")
    _child(name, "given", first, qualifier="CL")


def _rewrite_guardian(patient: etree._Element, guardian: Guardian | None) -> None:
    for el in patient.findall("cda:guardian", NS):
        patient.remove(el)
    if guardian is None:
        return
    el = etree.Element(_q("guardian"))
    _child(el, "telecom", value=f"mailto:{guardian.email}")
    person = _child(el, "guardianPerson")
    name = _child(person, "name")
    _child(name, "family", guardian.family)
    _child(name, "given", guardian.given)
    birth = patient.find("cda:birthTime", NS)
    patient.insert(list(patient).index(birth) + 1 if birth is not None else len(patient), el)


def _rewrite_birthplace(patient: etree._Element, target: Target) -> None:
    addr = patient.find("cda:birthplace/cda:place/cda:addr", NS)
    if addr is None:
        return
    for el in list(addr):
        addr.remove(el)
    _child(addr, "county", target.traits.birth_place_insee)
    if target.place is not None:
        _child(addr, "city", target.place.city.upper())
