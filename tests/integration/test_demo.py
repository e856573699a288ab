"""``dmp demo``: every record gets its documents, named for it, in one transaction; a re-run
completes an interrupted load and changes nothing otherwise (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import func, select

from dmp.accounts import represented_records
from dmp.accounts.service import ACTIVE, PERSON, PRO, REPRESENTATIVE, find, is_minor
from dmp.cli import main as cli
from dmp.demo.loader import (
    DEMO_PRO_ACCOUNTS,
    DEMO_REPRESENTATIVE_EMAIL,
    LAB_REPORT,
    MINOR_HIDDEN_FROM_REPRESENTATIVES,
    SHOWCASE_NIR,
    DemoLoadError,
    DemoPatient,
    demo_professional,
    demo_set,
    load_records,
    qualified_record,
)
from dmp.demo.recordtarget import INS_ROOTS
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.document import DmpFlag
from dmp.domain.ins import OID_NIR
from dmp.services import records
from dmp.services.context import Runtime
from dmp.services.publish import record_dek
from dmp.store import crypto, sealed_fields
from dmp.store.blobs import BlobStore
from dmp.store.schema import document, patient

NS = {"cda": "urn:hl7-org:v3"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
GENDER = {"female": "F", "male": "M"}


class FailingBlobs:
    """The instance's blob store, failing on its ``fail_at``-th write (a crash mid-record)."""

    def __init__(self, inner: BlobStore, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.puts = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise OSError("disque plein (panne simulée)")
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def documents_of(rt: Runtime, pid: UUID) -> list[tuple[Any, bytes]]:
    """Each document row of the record (sealed columns opened, SE-02) with its decrypted bytes."""
    with rt.engine.connect() as conn:
        dek = record_dek(conn, rt, pid)
        stored = conn.execute(select(document).where(document.c.patient_id == pid)).all()
        rows = sealed_fields.open_rows(conn, stored, "document", sealed_fields.SEALED["document"])
    return [(r, crypto.open_sealed(dek, pid, r.sha256_hex, rt.blobs.get(r.blob_key))) for r in rows]


def record_of(rt: Runtime, p: DemoPatient) -> Any:
    with rt.engine.connect() as conn:
        return records.find_by_ins(conn, p.ins)


def counts(rt: Runtime) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        n_patients = conn.execute(select(func.count()).select_from(patient)).scalar_one()
        n_documents = conn.execute(select(func.count()).select_from(document)).scalar_one()
    return n_patients, n_documents


def blob_files(rt: Runtime) -> int:
    return sum(1 for f in rt.settings.blob_dir.rglob("*") if f.is_file())


def assert_complete(rt: Runtime, demo: list[DemoPatient]) -> None:
    """Every demo patient has a record holding exactly its documents."""
    for p in demo:
        row = record_of(rt, p)
        assert row is not None, p.name
        docs = documents_of(rt, row.id)
        assert len(docs) == len(p.documents), p.name
    assert counts(rt) == (len(demo), sum(len(p.documents) for p in demo))


@pytest.fixture()
def demo_rt(runtime: Runtime) -> Runtime:
    """The test instance with its blob store where ``Settings.blob_dir`` says (files counted)."""
    from dmp.store.blobs import FileBlobStore

    return dataclasses.replace(runtime, blobs=FileBlobStore(runtime.settings.blob_dir, fsync=False))


def test_each_document_names_the_patient_of_its_record(demo_rt: Runtime) -> None:
    demo = demo_set(4)
    load_records(demo_rt, demo)
    for p in demo:
        row = record_of(demo_rt, p)
        docs = documents_of(demo_rt, row.id)
        assert sorted(r.title for r, _ in docs)  # every record has documents
        for doc_row, content in docs:
            cda = etree.fromstring(content, _PARSER)
            role = cda.find("cda:recordTarget/cda:patientRole", NS)
            ins_ids = [(i.get("root"), i.get("extension")) for i in role.findall("cda:id", NS)
                       if i.get("root") in INS_ROOTS]
            assert ins_ids == [(OID_NIR, row.ins_value)], (p.name, doc_row.title)
            name = role.find("cda:patient/cda:name", NS)
            families = {f.text for f in name.findall("cda:family", NS)}
            assert families == {row.birth_family_name}
            assert name.find("cda:given[@qualifier='BR']", NS).text == row.birth_given_names.split()[0]
            assert name.find("cda:given", NS).text == row.birth_given_names
            assert role.find("cda:patient/cda:birthTime", NS).get("value") == f"{row.birth_date:%Y%m%d}"
            gender = role.find("cda:patient/cda:administrativeGenderCode", NS).get("code")
            assert gender == GENDER[row.sex]
            if p.ins.value != SHOWCASE_NIR:
                assert b"PAT-TROIS" not in content and SHOWCASE_NIR.encode() not in content
            # The metadata agree with the bytes: type = ClinicalDocument/code, a CDA is text/xml,
            # the author is contained, the uniqueId is the CDA's id.
            code = cda.find("cda:code", NS)
            assert doc_row.type_code == code.get("code")
            assert doc_row.mime_type == "text/xml"
            resource = json.loads(doc_row.resource_json)
            assert resource["author"] == [{"reference": "#author"}]
            assert [c["id"] for c in resource["contained"]] == ["author"]
            cda_id = cda.find("cda:id", NS).get("root")
            assert doc_row.unique_id == f"urn:oid:{cda_id}"


def test_a_rerun_changes_nothing(demo_rt: Runtime) -> None:
    demo = demo_set(4)
    first = load_records(demo_rt, demo)
    assert (first.records_created, first.documents_published) == (4, sum(len(p.documents) for p in demo))
    before = counts(demo_rt), blob_files(demo_rt)
    again = load_records(demo_rt, demo)
    assert (again.records_created, again.documents_published) == (0, 0)
    assert (counts(demo_rt), blob_files(demo_rt)) == before


@pytest.mark.parametrize("fail_at", [3, 9], ids=["showcase-patient", "second-patient"])
def test_a_crash_mid_record_leaves_nothing_of_it_and_a_rerun_completes(
    demo_rt: Runtime, fail_at: int
) -> None:
    demo = demo_set(4)
    failing = dataclasses.replace(demo_rt, blobs=FailingBlobs(demo_rt.blobs, fail_at))
    with pytest.raises(DemoLoadError) as err:
        load_records(failing, demo)
    showcase_docs = len(demo[0].documents)
    crashed = demo[0] if fail_at <= showcase_docs else demo[1]
    message = str(err.value)
    assert crashed.ins.value in message and "panne simulée" in message and "Relancez « dmp demo »" in message
    assert record_of(demo_rt, crashed) is None  # the record and its documents, or nothing
    n_patients, n_documents = counts(demo_rt)
    assert n_patients == demo.index(crashed)
    assert blob_files(demo_rt) == n_documents  # no sealed blob left behind by the rolled-back record

    resumed = load_records(demo_rt, demo)
    assert resumed.records_created == len(demo) - n_patients
    assert_complete(demo_rt, demo)
    assert blob_files(demo_rt) == counts(demo_rt)[1]
    showcase = record_of(demo_rt, demo[0])
    assert len(documents_of(demo_rt, showcase.id)) == showcase_docs


def test_a_record_left_without_documents_by_an_earlier_loader_is_completed(demo_rt: Runtime) -> None:
    """What the former loader left after a crash: the showcase record created, no document."""
    demo = demo_set(3)
    doctor = Actor(kind=ActorKind.PROFESSIONAL, id="810001234565", name="Charles MULLER")
    now = datetime.now(UTC)
    with demo_rt.engine.begin() as conn:
        records.create(conn, demo_rt, doctor, qualified_record(demo[0].ins, demo[0].target.traits, now), now)
    report = load_records(demo_rt, demo)
    assert report.records_created == len(demo) - 1
    assert_complete(demo_rt, demo)


def test_the_lab_report_and_the_minor_with_her_representative(demo_rt: Runtime) -> None:
    demo = demo_set(3)
    load_records(demo_rt, demo)
    minor = demo[-1]
    row = record_of(demo_rt, minor)
    assert is_minor(row.birth_date, datetime.now(UTC))
    with demo_rt.engine.connect() as conn:
        rep = find(conn, PERSON, DEMO_REPRESENTATIVE_EMAIL)
        assert rep is not None and rep.kind == REPRESENTATIVE and rep.status == ACTIVE
        assert [r.patient_id for r in represented_records(conn, rep.id)] == [row.id]
    for p in demo:
        labs = [c for r, c in documents_of(demo_rt, record_of(demo_rt, p).id) if r.type_code == "11502-2"]
        assert len(labs) == 1 and LAB_REPORT in p.documents
        cda = etree.fromstring(labs[0], _PARSER)
        assert "glycémie" in "".join(cda.itertext()).lower()
        results = {
            o.find("cda:code", NS).get("code"): o.find("cda:value", NS)
            for o in cda.iterfind(".//cda:observation", NS)
        }
        assert {"2345-7", "4548-4", "2160-0"} <= results.keys()
        assert all(o.find("cda:code", NS).get("codeSystem") == "2.16.840.1.113883.6.1"
                   for o in cda.iterfind(".//cda:observation", NS))  # LOINC
        assert results["2345-7"].get("unit") == "g/L" and results["4548-4"].get("unit") == "%"
        assert results["2160-0"].get("unit") == "mg/L"
        assert all(float(v.get("value")) > 0 for v in results.values())
    # The minor's documents name her mother as guardian; nobody else's name one.
    for p in demo:
        for _, content in documents_of(demo_rt, record_of(demo_rt, p).id):
            guardians = etree.fromstring(content, _PARSER).findall(".//cda:patient/cda:guardian", NS)
            if p is minor:
                family = guardians[0].find("cda:guardianPerson/cda:name/cda:family", NS).text
                assert len(guardians) == 1 and family == "NESSI"
            else:
                assert guardians == []


def test_the_command_loads_once_and_prints_the_minor_and_her_representative(
    demo_rt: Runtime, tmp_path: Path
) -> None:
    env = {
        "DMP_DATABASE_URL": demo_rt.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(tmp_path / "var"),
    }
    first = CliRunner().invoke(cli, ["demo", "--patients", "3"], env=env)
    assert first.exit_code == 0, first.output
    demo = demo_set(3)
    total = sum(len(p.documents) for p in demo)
    assert f"3 dossiers créés, {total} documents publiés" in first.output
    assert DEMO_REPRESENTATIVE_EMAIL in first.output and demo[-1].ins.value in first.output
    assert "Léa NESSI" in first.output
    again = CliRunner().invoke(cli, ["demo", "--patients", "3"], env=env)
    assert again.exit_code == 0, again.output
    assert "0 dossiers créés, 0 documents publiés" in again.output
    assert counts(demo_rt) == (3, total)


def test_one_document_of_the_minor_is_hidden_from_her_representatives(demo_rt: Runtime) -> None:
    demo = demo_set(3)
    load_records(demo_rt, demo)
    hidden_title = {
        "BIO-TROD_2024.01_COVID-19.xml": "Test rapide d'orientation diagnostique : TROD Covid-19",
    }
    assert set(MINOR_HIDDEN_FROM_REPRESENTATIVES) <= hidden_title.keys()
    for p in demo:
        for r, _ in documents_of(demo_rt, record_of(demo_rt, p).id):
            hidden = bool(r.flags & DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX)
            wanted = p is demo[-1] and r.title in {hidden_title[n] for n in MINOR_HIDDEN_FROM_REPRESENTATIVES}
            assert hidden == wanted, (p.name, r.title)


def test_the_demo_has_a_second_gp_and_an_emergency_doctor_with_web_accounts(
    demo_rt: Runtime, tmp_path: Path
) -> None:
    env = {
        "DMP_DATABASE_URL": demo_rt.engine.url.render_as_string(hide_password=False),
        "DMP_VAR_DIR": str(tmp_path / "var"),
    }
    result = CliRunner().invoke(cli, ["demo", "--patients", "2"], env=env)
    assert result.exit_code == 0, result.output
    roux, urgent = demo_professional("dr-roux"), demo_professional("dr-berenger")
    assert (roux.profession, roux.specialty) == ("10", "SM26")
    assert (urgent.profession, urgent.specialty) == ("10", "SM59")  # médecine d'urgence: break-glass
    with demo_rt.engine.connect() as conn:
        for acc in DEMO_PRO_ACCOUNTS:
            pro = demo_professional(acc.slug)
            found = find(conn, PRO, pro.rpps)
            assert found is not None and found.status == ACTIVE, acc.slug
            assert pro.rpps in result.output and acc.password in result.output
            assert acc.totp_secret in result.output
            assert (tmp_path / "var" / "demo" / "cards" / acc.slug / "card.crt").exists()
