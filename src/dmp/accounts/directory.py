"""Import of professionals from an RPPS-extract-like CSV file (``dmp pro import``).

The file is the shape of the public RPPS extracts (annuaire santé, « Personne activité »):
a header line, ``|`` or ``;`` (or ``,``) separated, UTF-8 (with or without BOM). Columns are
found by their header, case and accents ignored; others are ignored. One line per activity:
a professional with several activities appears on several lines, the first one is kept.

| column (header) | required | meaning |
| --- | --- | --- |
| ``Identifiant PP`` (or ``Identification nationale PP`` = 8 + RPPS) | yes | RPPS, 11 digits, Luhn key |
| ``Nom d'exercice`` | yes | family name |
| ``Prénom d'exercice`` | no | given name |
| ``Code profession`` | yes | TRE_G15 (10 médecin, 21 pharmacien, 60 infirmier…) |
| ``Code savoir-faire`` | no | e.g. SM26 (checked against JDV_J01 for the profession) |
| ``Identifiant technique de la structure`` | no | structure id (Struct_IdNat) |
| ``Raison sociale site`` | no | structure name |
| ``Adresse e-mail (coord. structure)`` or ``Adresse e-mail`` | no | where the activation link is sent |
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from dmp.accounts.professionals import DirectoryEntry, upsert_professional
from dmp.errors import DmpError
from dmp.settings import Settings

COLUMNS: dict[str, tuple[str, ...]] = {
    "rpps": ("identifiant pp", "identification nationale pp", "rpps"),
    "family": ("nom d'exercice", "nom"),
    "given": ("prenom d'exercice", "prenom"),
    "profession": ("code profession",),
    "specialty": ("code savoir-faire", "code savoir faire"),
    "structure_id": ("identifiant technique de la structure", "identifiant structure"),
    "structure_name": ("raison sociale site", "raison sociale"),
    "email": ("adresse e-mail (coord. structure)", "adresse e-mail", "adresse email", "email"),
}
REQUIRED = ("rpps", "family", "profession")
BATCH = 200


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower().replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    codes: list[tuple[str, str]] = field(default_factory=list)  # (RPPS, code) for accounts without e-mail


def _columns(header: list[str]) -> dict[str, int]:
    folded = [_fold(h) for h in header]
    found: dict[str, int] = {}
    for name, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in folded:
                found[name] = folded.index(alias)
                break
    missing = [COLUMNS[n][0] for n in REQUIRED if n not in found]
    if missing:
        raise ValueError("colonne(s) absente(s) de l'en-tête : " + ", ".join(f"« {m} »" for m in missing))
    return found


def read_entries(path: Path) -> tuple[int, Iterator[tuple[int, DirectoryEntry]]]:
    """(number of data lines, iterator of (line number, entry)); ValueError for a bad header."""
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = max("|;,\t", key=first.count)
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        raise ValueError("fichier vide")
    cols = _columns(rows[0])

    def cell(row: list[str], name: str) -> str:
        i = cols.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    def entries() -> Iterator[tuple[int, DirectoryEntry]]:
        for n, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            rpps = cell(row, "rpps")
            if len(rpps) == 12 and rpps.startswith("8"):
                rpps = rpps[1:]  # Identification nationale PP = 8 + RPPS
            name = " ".join(p for p in (cell(row, "given"), cell(row, "family").upper()) if p)
            yield (
                n,
                DirectoryEntry(
                    rpps=rpps,
                    profession=cell(row, "profession"),
                    name=name,
                    specialty=cell(row, "specialty") or None,
                    structure_id=cell(row, "structure_id") or None,
                    structure_name=cell(row, "structure_name") or None,
                    email=cell(row, "email") or None,
                ),
            )

    return len(rows) - 1, entries()


def import_file(
    engine: Engine,
    path: Path,
    now: datetime,
    *,
    settings: Settings,
    progress: Callable[[int], object] = lambda n: None,
) -> ImportReport:
    """Create or update the accounts of every valid line; invalid lines are reported, not fatal."""
    report = ImportReport()
    _, entries = read_entries(path)
    seen: set[str] = set()
    batch: list[tuple[int, DirectoryEntry]] = []

    def flush() -> None:
        with engine.begin() as conn:
            for _, e in batch:
                issued = upsert_professional(conn, e, now, settings=settings, reissue=False)
                if issued.created:
                    report.created += 1
                else:
                    report.updated += 1
                if issued.activation_code and not e.email:
                    report.codes.append((e.rpps, issued.activation_code))
        progress(len(batch))
        batch.clear()

    for line, entry in entries:
        try:
            valid = entry.validated()
        except (DmpError, ValueError) as exc:
            report.errors.append((line, getattr(exc, "message", None) or str(exc)))
            progress(1)
            continue
        if valid.rpps in seen:
            report.duplicates += 1
            progress(1)
            continue
        seen.add(valid.rpps)
        batch.append((line, valid))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return report
