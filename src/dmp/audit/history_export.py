"""The portal's « historique des accès » as files: CSV for a spreadsheet, PDF to print or keep.

Pure rendering of lines already chosen and filtered under the reader's scope
(``dmp.services.trail_read.history_export``). The CSV is what French spreadsheets open as is:
UTF-8 with a byte-order mark, ``;`` between fields, French headers. The PDF uses the same Unicode
font as the printable summary (``dmp.clinical.summary_pdf.unicode_font``: DejaVu Sans from the
system, core Helvetica in latin-1 otherwise).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from dmp.audit.history import PARIS, HistoryItem
from dmp.clinical.summary_pdf import with_french_font

CSV_HEADERS = ("Date", "Heure", "Qui", "Profession ou qualité", "Structure", "Action", "Mode d'accès")
_BOM = "\ufeff"


def _row(item: HistoryItem) -> tuple[str, ...]:
    local = item.at.astimezone(PARIS)
    return (
        f"{local:%d/%m/%Y}",
        f"{local:%H:%M}",
        item.who,
        item.profession or "",
        item.structure or "",
        item.what,
        item.mode or "",
    )


def _neutralised(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (« =… », « +… ») is read as text instead."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def history_csv(items: Sequence[HistoryItem]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for item in items:
        writer.writerow([_neutralised(c) for c in _row(item)])
    return (_BOM + out.getvalue()).encode("utf-8")


class _HistoryPdf(FPDF):
    def __init__(self, heading: str, clean: Callable[[str], str], family: str) -> None:
        super().__init__(orientation="landscape", unit="mm", format="A4")
        self.heading, self.clean, self.family = heading, clean, family
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(12, 12, 12)

    def header(self) -> None:
        self.set_font(self.family, "", 8)
        self.cell(0, 5, self.clean(self.heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.family, "", 8)
        self.cell(0, 5, self.clean(f"Page {self.page_no()} sur {{nb}}"), align="C")


def _new_pdf(heading: str) -> _HistoryPdf:
    return with_french_font(_HistoryPdf, heading)


TRUNCATED = " Seules les plus récentes sont reprises : affinez les filtres pour le reste."
_WIDTHS = (22, 12, 50, 30, 40, 85, 34)  # 273 mm: A4 landscape within the margins


def history_pdf(
    items: Sequence[HistoryItem], *, holder: str, filters: str, generated_at: datetime, truncated: bool
) -> bytes:
    """The lines as a table, after a heading saying whose record, which filters and when."""
    pdf = _new_pdf(f"Dossier Médical Partagé — historique des accès — {holder}")
    pdf.set_title(pdf.clean(f"Historique des accès au DMP de {holder}"))
    pdf.set_creator("Dossier Médical Partagé")
    pdf.set_lang("fr")
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 14)
    pdf.cell(0, 8, pdf.clean("Historique des accès au dossier"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(pdf.family, "", 9)
    local = generated_at.astimezone(PARIS)
    intro = [
        f"Dossier de {holder}. Édité le {local:%d/%m/%Y} à {local:%H:%M}.",
        f"Filtres : {filters}.",
        f"{len(items)} ligne(s), de la plus récente à la plus ancienne." + (TRUNCATED if truncated else ""),
    ]
    for line in intro:
        pdf.multi_cell(0, 5, pdf.clean(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    with pdf.table(col_widths=_WIDTHS, text_align="LEFT", line_height=4.5) as table:
        head = table.row()
        for title in CSV_HEADERS:
            head.cell(pdf.clean(title))
        for item in items:
            row = table.row()
            for cell in _row(item):
                row.cell(pdf.clean(cell))
    return bytes(pdf.output())
