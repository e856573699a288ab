"""HTTP surface (ASGI): FHIR/MHD under /fhir, OAuth token endpoint under /oauth."""
