"""The printable summary of a record (CS-06): a French PDF of the patient's identity, the synthesis
sections and the document list, rendered with fpdf2 from data already filtered by the policy.

Pure rendering: what to show was decided by the caller (dmp.services.export). The sections are
the IPS ones of ``dmp.fhir.summary`` (same titles, same columns), narrowed to what a reader of a
printed summary wants: current allergies, active problems, current treatments, the last result
of each analyte, vaccinations.

Font: fpdf2's core fonts are latin-1 only: French accents and « » fit, but not ’ œ € — which
clinical text does contain (« œdème », « sœur »). A Unicode TrueType font is therefore taken from
the system (DejaVu Sans, Debian/Ubuntu package ``fonts-dejavu-core``, free licence; nothing is
vendored here); without one, the core Helvetica is used and the few characters outside latin-1
are transliterated (docs/export.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from dmp.fhir.common import Json
from dmp.fhir.summary import SECTIONS, Section, section_of

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu (fonts-dejavu-core)
    Path("/usr/share/fonts/dejavu"),  # Fedora, Arch
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
)
_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre")
_LATIN1 = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...",
                         "œ": "oe", "Œ": "OE", "€": "EUR", "\u202f": " ", "\u2009": " "})
_ACTIVE = {"active", "recurrence", "relapse", ""}  # clinicalStatus of what is current
_CURRENT_MEDICATION = {"active", "intended", "on-hold", "unknown", ""}


@dataclass(frozen=True)
class Identity:
    birth_family_name: str
    birth_given_names: str
    usual_family_name: str | None
    usual_given_name: str | None
    birth_date: date
    ins: str

    @property
    def display(self) -> str:
        given = self.usual_given_name or self.birth_given_names.split()[0]
        return f"{given} {self.usual_family_name or self.birth_family_name}"


@dataclass(frozen=True)
class DocumentEntry:
    date: datetime
    type_label: str
    title: str
    author: str


def french_date(d: date) -> str:
    day = "1er" if d.day == 1 else str(d.day)
    return f"{day} {_MONTHS[d.month - 1]} {d.year}"


def _short_date(iso: str) -> str:
    """``2026-11-18`` → ``18/11/2026`` (a partial date stays as given)."""
    parts = iso[:10].split("-")
    return "/".join(reversed(parts)) if len(parts) == 3 else iso


def unicode_font() -> tuple[Path, Path] | None:
    """DejaVu Sans (regular, bold) from the system, if installed."""
    for d in FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _code(concept: Any) -> str:
    if isinstance(concept, dict):
        for c in concept.get("coding", []):
            if c.get("code"):
                return str(c["code"])
    return ""


def _is_current(res: Json) -> bool:
    rtype = res.get("resourceType")
    if rtype in ("AllergyIntolerance", "Condition"):
        return _code(res.get("clinicalStatus")) in _ACTIVE
    if rtype == "MedicationStatement":
        return str(res.get("status") or "") in _CURRENT_MEDICATION
    return True


def _observed_on(res: Json) -> str:
    when = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start") or ""
    return str(when)


def _last_per_analyte(facts: Sequence[Json]) -> list[Json]:
    """The most recent observation of each code (the summary shows the last result, not the history)."""
    latest: dict[str, Json] = {}
    for f in facts:
        key = _code(f.get("code")) or str(f.get("id"))
        if key not in latest or _observed_on(f) > _observed_on(latest[key]):
            latest[key] = f
    return sorted(latest.values(), key=_observed_on, reverse=True)


PRINTED_TITLES = {
    "allergies": "Allergies et intolérances",
    "problems": "Problèmes de santé actifs",
    "medications": "Traitements en cours",
    "results": "Derniers résultats d'examens",
    "vital-signs": "Derniers signes vitaux",
    "immunizations": "Vaccinations",
}


def printed_sections(facts: Sequence[Json]) -> list[tuple[Section, str, list[Json]]]:
    """(IPS section, printed title, facts shown) in the IPS order, each section present."""
    grouped: dict[str, list[Json]] = {s.key: [] for s in SECTIONS}
    for f in facts:
        key = section_of(f)
        if key is not None and _is_current(f):
            grouped[key].append(f)
    for key in ("results", "vital-signs"):
        grouped[key] = _last_per_analyte(grouped[key])
    return [(s, PRINTED_TITLES.get(s.key, s.title), grouped[s.key]) for s in SECTIONS]


class _Summary(FPDF):
    """An A4 page with the DMP's header and a French page number in the footer."""

    def __init__(self, heading: str, clean: Callable[[str], str], family: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.heading = heading
        self.clean = clean
        self.family = family
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def header(self) -> None:
        self.set_font(self.family, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self.clean(self.heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self.clean(f"Page {self.page_no()} sur {{nb}}"), align="C")


def _to_latin1(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


PdfT = TypeVar("PdfT", bound=FPDF)


def with_french_font(make: Callable[[str, Callable[[str], str], str], PdfT], heading: str) -> PdfT:
    """A PDF of class ``make`` drawn in DejaVu when the system has it (every French character),
    else in Helvetica with the text folded to Latin-1 (œ → oe, ’ → ', € → EUR)."""
    font = unicode_font()
    if font is None:
        return make(heading, _to_latin1, "helvetica")
    pdf = make(heading, lambda s: s, "dejavu")
    pdf.add_font("dejavu", "", str(font[0]))
    pdf.add_font("dejavu", "B", str(font[1]))
    return pdf


def _new_document(heading: str) -> _Summary:
    return with_french_font(_Summary, heading)


def _title(pdf: _Summary, text: str, size: int = 12) -> None:
    pdf.set_font(pdf.family, "B", size)
    pdf.ln(2)
    pdf.cell(0, 7, pdf.clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(pdf.family, "", 9)


def _table(
    pdf: _Summary, columns: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]
) -> None:
    pdf.set_font(pdf.family, "", 9)
    with pdf.table(col_widths=tuple(widths), text_align="LEFT", line_height=5) as t:
        head = t.row()
        for c in columns:
            head.cell(pdf.clean(c))
        for r in rows:
            line = t.row()
            for cell in r:
                line.cell(pdf.clean(cell))


def _fitted(pdf: _Summary, text: str, width: float) -> str:
    """``text`` cut to fit ``width`` (mm) on one line, « … » marking the cut."""
    text = pdf.clean(text)
    room = width - 2 * pdf.c_margin
    if pdf.get_string_width(text) <= room:
        return text
    ellipsis = pdf.clean("…")
    while text and pdf.get_string_width(text + ellipsis) > room:
        text = text[: max(1, int(len(text) * room / pdf.get_string_width(text + ellipsis)))]
        text = text[:-1] if pdf.get_string_width(text + ellipsis) > room else text
    return text + ellipsis


def _list_table(
    pdf: _Summary, columns: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]
) -> None:
    """One line per row, cut to its column: fpdf2's ``table`` breaks every cell's lines twice, some
    seconds for the 1,000 documents of a large record; this is about a hundred times faster."""
    height = 5.0

    def heading() -> None:
        pdf.set_font(pdf.family, "B", 8)
        for col, w in zip(columns, widths, strict=True):
            pdf.cell(w, height, pdf.clean(col), border="B")
        pdf.ln(height)
        pdf.set_font(pdf.family, "", 8)

    heading()
    for row in rows:
        if pdf.will_page_break(height):
            pdf.add_page()
            heading()
        for cell, w in zip(row, widths, strict=True):
            pdf.cell(w, height, _fitted(pdf, cell, w))
        pdf.ln(height)


def _identity(pdf: _Summary, who: Identity, exported_at: datetime) -> None:
    _title(pdf, "Résumé du dossier médical partagé", 16)
    pdf.set_font(pdf.family, "", 10)
    lines = [
        ("Patient", who.display),
        ("Nom de naissance", who.birth_family_name),
        ("Prénoms de naissance", who.birth_given_names),
        ("Date de naissance", french_date(who.birth_date)),
        ("INS", who.ins),
        ("Résumé édité le", f"{french_date(exported_at.date())} à {exported_at:%H:%M}"),
    ]
    if who.usual_family_name:
        lines.insert(2, ("Nom utilisé", who.usual_family_name))
    for label, value in lines:
        pdf.set_font(pdf.family, "B", 10)
        pdf.cell(50, 6, pdf.clean(label))
        pdf.set_font(pdf.family, "", 10)
        pdf.cell(0, 6, pdf.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


NOTICE = (
    "Ce résumé ne reprend que les informations que vous êtes autorisé(e) à consulter, extraites "
    "automatiquement des documents du dossier. Il ne remplace pas les documents eux-mêmes, qui font foi."
)


def render(
    who: Identity, facts: Sequence[Json], documents: Sequence[DocumentEntry], exported_at: datetime
) -> bytes:
    """The PDF bytes; ``exported_at`` in the reader's time zone (the caller chooses it)."""
    pdf = _new_document(f"Dossier Médical Partagé — {who.display} — résumé imprimable")
    pdf.set_title(pdf.clean(f"Résumé du DMP de {who.display}"))
    pdf.set_creator("Dossier Médical Partagé")
    pdf.set_lang("fr")
    pdf.add_page()
    _identity(pdf, who, exported_at)
    pdf.ln(2)
    pdf.set_font(pdf.family, "", 8)
    pdf.multi_cell(0, 4, pdf.clean(NOTICE), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for section, title, shown in printed_sections(facts):
        _title(pdf, title)
        if not shown:
            pdf.cell(0, 5, pdf.clean("Aucune information disponible."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            continue
        facts_rows = [(a, b, _short_date(c)) for a, b, c in (section.row(f) for f in shown)]
        _table(pdf, section.columns, facts_rows, (90, 60, 30))
    _title(pdf, f"Documents du dossier ({len(documents)})")
    if not documents:
        pdf.cell(0, 5, pdf.clean("Aucun document."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        rows = [(f"{d.date:%d/%m/%Y}", d.type_label, d.title, d.author) for d in documents]
        _list_table(pdf, ("Date", "Type", "Titre", "Auteur"), rows, (20, 52, 72, 36))
    return bytes(pdf.output())
