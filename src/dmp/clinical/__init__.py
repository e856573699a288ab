"""Clinical facts read from CDA documents, and their FHIR R4 form. Pure: no database, no web."""

from dmp.clinical.extract import extract
from dmp.clinical.model import KINDS, Code, Extraction, Fact, Provenance, Quantity

__all__ = ["KINDS", "Code", "Extraction", "Fact", "Provenance", "Quantity", "extract"]
