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
        "endpoint answers OAuth errors with the same code in `dmp_error_code`.",
        "",
        "| code | HTTP | FHIR issue type | message (French) |",
        "| --- | --- | --- | --- |",
    ]
    for kind in CATALOGUE.values():
        message = kind.message.replace("|", "\\|")
        lines.append(f"| `{kind.code}` | {kind.status} | {kind.issue_type} | {message} |")
    return "\n".join(lines) + "\n"


PAGES = {"docs/errors.md": errors_page}


def main() -> None:
    for rel, render in PAGES.items():
        (ROOT / rel).write_text(render(), encoding="utf-8")
        print(f"wrote {rel}")


if __name__ == "__main__":
    main()
