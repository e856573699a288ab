"""The synthesis-first record page (CS-07, CT-04, CT-05) and lab trends in one unit (CS-10):
two lab reports with the same analyte in g/L and mmol/L, the same allergy in two « Synthèse
médicale », a masked document whose facts must not reach a colleague's page."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from helpers import bundle, doc
from portal import Portal, portal_fixture, txt  # noqa: F401  (fixture)
from test_no_oracle import _authorise
from test_publication_coherence import cda_bundle, example_cda

from conftest import Api, Identity
from dmp.clinical.fhir import PQ_TRANSLATION

LAB = Path(__file__).parents[2] / "src/dmp/demo/data/CR-BIO_demo_glycemie.xml"
GLUCOSE = "2345-7"
_WRITTEN = b'<value xsi:type="PQ" value="1.32" unit="g/L"/>'
_MOLAR = b'<value xsi:type="PQ" value="7.3" unit="mmol/L"/>'  # the same sample under LOINC 14749-6
_TAKEN = b'<effectiveTime value="20261118073000+0100"/>'


def _lab(api: Api, ident: Identity, value: str, unit: str, day: str, molar: str = "7.3", **kw: Any) -> str:
    """The demo lab report, its glycaemia (LOINC 2345-7) written as ``value unit`` on this day
    (and as ``molar`` mmol/L under the molar code, as French labs print both)."""
    content = (
        LAB.read_bytes()
        .replace(_WRITTEN, f'<value xsi:type="PQ" value="{value}" unit="{unit}"/>'.encode())
        .replace(_MOLAR, f'<value xsi:type="PQ" value="{molar}" unit="mmol/L"/>'.encode())
        .replace(_TAKEN, f'<effectiveTime value="202611{day}073000+0100"/>'.encode())
    )
    d = doc(ident, content, type_code="11502-2", title=f"Bilan biologique du {day}/11", **kw)
    resp = api.post("", bundle(ident, (d, content)))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _summary_doc(api: Api, ident: Identity, date: str, agent: str = "Paracétamol", **kw: Any) -> str:
    """The official VSM example (« Synthèse médicale »), its paracetamol allergy made active."""
    content = example_cda("VSM_1.4_2022.01.xml", ident).replace(
        b'code="inactive" displayName="Inactif"', b'code="active" displayName="Actif"'
    )
    if agent != "Paracétamol":  # another agent, uncoded by this test: its own line
        coded = b'code="99999999" displayName="' + agent.encode() + b'"'
        content = content.replace("Paracétamol".encode(), agent.encode()).replace(
            b'code="60234100" displayName="PARACETAMOL"', coded
        )
    resp = api.post("", cda_bundle(ident, content, type_code="SYNTH", date=date, **kw))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["entry"][1]["response"]["location"].split("/")[1])


def _glucose_history(api: Api, pid: str, who: str = "doctor") -> list[Any]:
    resp = api.get(
        "Observation",
        who=who,
        params={"patient": f"Patient/{pid}", "code": f"http://loinc.org|{GLUCOSE}", "_sort": "date"},
    )
    assert resp.status_code == 200, resp.text
    return [e["resource"] for e in resp.json().get("entry", [])]


def test_the_history_of_an_analyte_is_in_one_unit_the_original_kept(api: Api, patient: Identity) -> None:
    from test_policy_api import patient_id

    pid = patient_id(api, patient)
    _lab(api, patient, "7.0", "mmol/L", "25", molar="7.0")  # published first, taken later
    _lab(api, patient, "1.32", "g/L", "18")
    _lab(api, patient, "140", "mg/dL", "28", molar="7.77")
    history = _glucose_history(api, pid)
    got = [(r["effectiveDateTime"][:10], r["valueQuantity"]["value"], r["valueQuantity"]["code"])
           for r in history]
    assert got == [("2026-11-18", 1.32, "g/L"), ("2026-11-25", 1.26, "g/L"), ("2026-11-28", 1.4, "g/L")]
    assert all(r["valueQuantity"]["system"] == "http://unitsofmeasure.org" for r in history)
    assert "extension" not in history[0]["valueQuantity"]  # written in g/L: nothing converted
    (kept,) = history[1]["valueQuantity"]["extension"]
    assert kept["url"] == PQ_TRANSLATION
    assert kept["valueQuantity"] == {
        "value": 7.0, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"
    }
    assert history[2]["valueQuantity"]["extension"][0]["valueQuantity"]["value"] == 140
    newest_first = [r["effectiveDateTime"][:10] for r in _glucose_history_desc(api, pid)]
    assert newest_first == ["2026-11-28", "2026-11-25", "2026-11-18"]


def _glucose_history_desc(api: Api, pid: str) -> list[Any]:
    resp = api.get("Observation", params={"patient": f"Patient/{pid}", "code": GLUCOSE, "_sort": "-date"})
    assert resp.status_code == 200, resp.text
    return [e["resource"] for e in resp.json()["entry"]]


def _plain(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _section(page: str, title: str) -> str:
    """The text of one section of the synthesis (from its heading to the next)."""
    text = _plain(page)
    start = text.index(title)
    rest = text[start + len(title):]
    ends = [rest.index(t) for t in ("Problèmes actifs", "Traitements en cours", "Derniers résultats",
                                      "Vaccinations", "Documents") if t in rest]
    return " ".join(rest[: min(ends) if ends else len(rest)].split())


def _pro_browser(portal: Portal, card: str, email: str) -> Any:
    rpps, code = portal.professional(card, email)
    b = portal.browser("/pro")
    portal.activate(b, rpps, code)
    return b


def test_the_professional_record_page_starts_with_the_synthesis(portal: Portal) -> None:
    api = portal.api
    ident, pid = portal.record()
    lab1 = _lab(api, ident, "1.32", "g/L", "18")
    lab2 = _lab(api, ident, "7.0", "mmol/L", "25", molar="7.0")
    old = _summary_doc(api, ident, "2024-03-01T10:00:00+01:00")
    last = _summary_doc(api, ident, "2025-06-02T10:00:00+02:00")
    # Masked from professionals: a higher glycaemia, another allergy, a fresh synthesis.
    masked_lab = _lab(api, ident, "2.50", "g/L", "28", molar="13.9", flags=("MASQUE_PS",))
    masked_vsm = _summary_doc(
        api, ident, "2026-11-30T10:00:00+01:00", agent="Pénicilline", flags=("MASQUE_PS",)
    )
    _authorise(api, str(pid), "doctor2")
    b = _pro_browser(portal, "doctor2", "david@chu.test")

    page = b.get(f"/pro/patient?ins={ident.nir}")
    assert page.status_code == 200, page.text
    body = page.text
    assert body.index("Synthèse du dossier") < body.index("<h2>Documents</h2>")  # synthesis first
    allergies = _section(body, "Allergies et intolérances")
    assert allergies.count("Paracétamol") + allergies.count("PARACETAMOL") == 1  # merged
    assert "Sources :" in allergies  # both documents named
    assert f'href="/pro/documents/{old}/lecture"' in body and f'href="/pro/documents/{last}/lecture"' in body
    assert "Angine de poitrine instable" in _section(body, "Problèmes actifs")
    assert "Pyélonéphrite" not in _section(body, "Problèmes actifs")  # resolved
    assert "PLAVIX" in _section(body, "Traitements en cours")
    results = _section(body, "Derniers résultats")
    assert re.search(r"Glycémie : courbe des 2 valeurs 1,26 g/L 25/11/2026 ↓ en baisse", results), results
    assert "précédente : 1,32 g/L le 18/11/2026" in results
    assert f'href="/pro/documents/{lab2}/lecture"' in body and "↓" in body
    # The last « Synthèse médicale » the professional may see is from 2025: flagged.
    assert "Dernière « Synthèse médicale » : 02/06/2025 à 10:00 — plus d'un an" in _plain(body)
    # Nothing of the masked documents: neither their values, nor their allergy, nor their links.
    assert "Pénicilline" not in body and "2,5 g/L" not in body
    assert masked_lab not in body and masked_vsm not in body
    assert "script" not in body.lower().replace('src="/static', "")  # no inline script
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp

    # « Courbe » of the glycaemia: one unit, the written value beside it, the masked one absent.
    link = re.search(r'href="(/pro/patient/analyse\?[^"]+analyte%3Aglucose)"', body)
    assert link, body
    curve = b.get(html.unescape(link.group(1)))
    assert curve.status_code == 200, curve.text
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>\s*<td>([^<]+)", curve.text)
    got = [(d.strip(), v.strip()) for d, v in rows]
    assert got == [("18/11/2026", "1,32 g/L"), ("25/11/2026", "1,26 g/L")]
    assert "7 mmol/L" in txt(curve) and "2,5" not in txt(curve)
    assert lab1 in curve.text

    # The author sees their masked documents: the filter is the document's, not a blanket one.
    author = _pro_browser(portal, "doctor", "dr@cabinet.test")
    mine = author.get(f"/pro/patient?ins={ident.nir}").text
    assert "Pénicilline" in mine and "2,5 g/L" in mine and "en hausse" in mine
    assert "plus d'un an" not in mine  # their 30/11/2026 synthesis is recent


def test_the_patient_record_page_has_the_synthesis(portal: Portal) -> None:
    api = portal.api
    ident, pid = portal.record()
    _lab(api, ident, "1.32", "g/L", "18")
    _lab(api, ident, "1.40", "g/L", "25", molar="7.77", flags=("INVISIBLE_PATIENT",))  # not yet announced
    _summary_doc(api, ident, "2026-10-01T10:00:00+02:00")
    b = portal.browser()
    portal.activate(b, ident.nir, portal.patient_account(pid))
    home = b.get("/")
    assert home.status_code == 200, home.text
    text = txt(home)
    assert "Synthèse du dossier" in text and "Paracétamol" in _section(home.text, "Allergies et intolérances")
    results = _section(home.text, "Derniers résultats")
    assert re.search(r"Glycémie( : courbe des \d valeurs)? 1,32 g/L", results), results
    assert "1,4 g/L" not in results  # the hidden one not shown
    assert "Dernière « Synthèse médicale » : 01/10/2026" in _plain(home.text) and "plus d'un an" not in text
