"""Generated documentation pages. ``python -m dmp.devtools.docs`` rewrites them;
a test fails when a page drifts from the code it describes."""

from __future__ import annotations

from pathlib import Path

from dmp.errors import CATALOGUE

ROOT = Path(__file__).resolve().parents[3]


def errors_page() -> str:
    lines = [
        "# Error codes",
        "",
        "<!-- Generated from src/dmp/errors.py by `python -m dmp.devtools.docs`; do not edit. -->",
        "",
        "Every refusal is a FHIR `OperationOutcome` whose `issue[0].details.coding[0]` carries the",
        "stable code below (system `https://dmp.example.org/fhir/CodeSystem/dmp-error`) and whose",
        "`diagnostics` carries the French message, `{detail}` replaced by the specifics. The token",
        "endpoint answers OAuth errors with the same code in `dmp_error_code`. A publication refused",
        "for several incoherences lists every fault, one `issue` each, the first in `issue[0]`; the",
        "refusal as a whole is `SUBMISSION_INCOHERENT` (its code in the access trail), which adds no issue.",
        "",
        "| code | HTTP | FHIR issue type | message (French) |",
        "| --- | --- | --- | --- |",
    ]
    for kind in CATALOGUE.values():
        message = kind.message.replace("|", "\\|")
        lines.append(f"| `{kind.code}` | {kind.status} | {kind.issue_type} | {message} |")
    return "\n".join(lines) + "\n"


def access_matrix_page() -> str:
    from dmp.domain.professional import PROFESSIONS
    from dmp.policy.matrix import matrix
    from dmp.terminology import valueset

    m = matrix()
    codes = sorted(m, key=int)
    lines = [
        "# Access matrix: profession x document type",
        "",
        "<!-- Generated from src/dmp/policy/matrix.json by `python -m dmp.devtools.docs`; do not edit. -->",
        "",
        "`L` = may read, `É` = may write (deposit), `-` = neither. The author of a document always reads",
        "it; masking, blocks and authorisations apply on top (see access-policy.md). Professions absent",
        "from this table have no access at all (AC-01). A médecin du travail (savoir-faire SM25, C41,",
        "CAPA11) writes as a doctor but never reads (AC-17).",
        "",
        "## Professions and sources",
        "",
        "| code | profession | where the row comes from |",
        "| --- | --- | --- |",
    ]
    for code in codes:
        lines.append(f"| {code} | {PROFESSIONS.get(code, code)} | {m[code].source} |")
    lines += [
        "",
        "## Matrix",
        "",
        "| type (JDV_J66) | " + " | ".join(codes) + " |",
        "| --- | " + " | ".join("---" for _ in codes) + " |",
    ]
    for concept in sorted(valueset("J66"), key=lambda c: c.code):
        cells = []
        for code in codes:
            r = m[code]
            cell = ("L" if r.read.allows(concept.code) else "") + (
                "É" if r.write.allows(concept.code) else ""
            )
            cells.append(cell or "-")
        label = concept.display.replace("|", "/")
        lines.append(f"| `{concept.code}` {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PAGES = {"docs/errors.md": errors_page, "docs/access-matrix.md": access_matrix_page}


def main() -> None:
    for rel, render in PAGES.items():
        (ROOT / rel).write_text(render(), encoding="utf-8")
        print(f"wrote {rel}")


if __name__ == "__main__":
    main()
