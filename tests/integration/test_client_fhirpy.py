"""fhirpy (sync and async), unchanged, against a real ``dmp serve``.

Search, ``fetch_all`` over every page, ``count``, read, and references resolved on the server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from conftest import LiveRecord


def _sync(live: Any) -> SyncFHIRClient:
    return SyncFHIRClient(live.fhir, authorization=f"Bearer {live.token}")


def test_search_fetch_all_follows_every_page(live: Any, live_record: LiveRecord) -> None:
    docs = _sync(live).resources("DocumentReference").search(**{"patient.identifier": live_record.identifier})
    first_page = docs.limit(2).fetch()
    assert len(first_page) == 2
    every = docs.limit(2).fetch_all()  # follows the `next` links, two entries at a time
    found = sorted(d["masterIdentifier"]["value"] for d in every)
    assert found == sorted(f"urn:oid:{u}" for u in live_record.unique_ids)


def test_count_uses_the_searchset_total(live: Any, live_record: LiveRecord) -> None:
    client = _sync(live)
    by_patient = client.resources("DocumentReference").search(patient=f"Patient/{live_record.patient_id}")
    assert by_patient.count() == 5
    assert by_patient.search(status="entered-in-error").count() == 0


def test_read_and_resolve_references(live: Any, live_record: LiveRecord) -> None:
    client = _sync(live)
    docs = client.resources("DocumentReference").search(**{"patient.identifier": live_record.identifier})
    doc = docs.first()
    assert doc is not None
    again = client.reference("DocumentReference", doc.id).to_resource()
    assert again["masterIdentifier"] == doc["masterIdentifier"]
    patient = doc["subject"].to_resource()  # a reference the server emitted resolves on the server
    assert patient.id == live_record.patient_id
    assert patient["identifier"][0]["value"] == live_record.ident.nir
    # The submission set lists the document: its reference resolves to the same resource.
    lists = client.resources("List").search(patient=f"Patient/{live_record.patient_id}").fetch_all()
    entries = [e["item"].to_resource().id for lst in lists for e in lst.get("entry", [])]
    assert doc.id in entries


def test_unknown_resource_is_not_found(live: Any) -> None:
    missing = _sync(live).reference("DocumentReference", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(ResourceNotFound, match="OperationOutcome"):
        missing.to_resource()


def test_async_client_searches_pages_counts_and_reads(live: Any, live_record: LiveRecord) -> None:
    async def scenario() -> tuple[int, int, str]:
        client = AsyncFHIRClient(live.fhir, authorization=f"Bearer {live.token}")
        docs = client.resources("DocumentReference").search(patient=f"Patient/{live_record.patient_id}")
        every = await docs.limit(2).fetch_all()
        total = await docs.count()
        first = await docs.first()
        assert first is not None
        patient = await first["subject"].to_resource()
        return len(every), total, patient.id

    assert asyncio.run(scenario()) == (5, 5, live_record.patient_id)
