"""FHIR R4 wire format: parsing, validation and mapping, independent of the web framework."""

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"

# Canonical base of this implementation's own profiles, extensions and code systems.
# example.org is reserved: replace it when the project gets its published canonical.
CANONICAL = "https://dmp.example.org/fhir"
