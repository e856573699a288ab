"""Clinical facts read from documents (CDA, FHIR documents), and their FHIR R4 form. Pure: no
database, no web."""

from dmp.clinical.extract import extract
from dmp.clinical.fhir_document import extract_bundle, looks_like_json
from dmp.clinical.model import KINDS, Code, Extraction, Fact, Provenance, Quantity


def _looks_like_xml(content: bytes) -> bool:
    return content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def read_document(content: bytes) -> Extraction | None:
    """The facts of a published document's bytes: a CDA (XML) or a FHIR document (JSON Bundle of
    type ``document``); None for any other content (PDF, image…), which has nothing to extract."""
    if _looks_like_xml(content):
        return extract(content)
    if looks_like_json(content):
        return extract_bundle(content)
    return None


__all__ = [
    "KINDS",
    "Code",
    "Extraction",
    "Fact",
    "Provenance",
    "Quantity",
    "extract",
    "extract_bundle",
    "read_document",
]
