"""``dmp demo``: a realistic demo instance (patients, professionals, ANS example documents)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from uuid import UUID

import click
from sqlalchemy import Connection, select
from tqdm import tqdm

from dmp.auth.pki import CA_CERT_FILE, init_ca, issue_card
from dmp.bootstrap import build_runtime
from dmp.cda import parse_header
from dmp.demo.bundles import bundle_from_cda, master_identifier_value
from dmp.demo.recordtarget import Guardian, Place, Target, for_patient
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
from dmp.domain.ins import SYSTEM_NIR, Ins, compute_key, parse_ins
from dmp.errors import DmpError
from dmp.fhir.bundle import parse_provide_bundle
from dmp.fhir.patient import CreationRequest
from dmp.services import blob_hygiene, publish, records
from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.db import upgrade
from dmp.store.schema import document_uid


@dataclass(frozen=True)
class DemoProfessional:
    slug: str
    rpps: str
    profession: str
    specialty: str | None
    name: str
    structure: str


PROFESSIONALS = [
    DemoProfessional("dr-muller", "10001234565", "10", "SM26", "Charles MULLER", "Cabinet médical du Parc"),
    DemoProfessional("dr-david", "10002345675", "10", "SM27", "Charles DAVID", "CH de Reims"),
    DemoProfessional("pharm-didot", "10003456786", "21", None, "Pierre DIDOT", "Pharmacie de la Gare"),
    DemoProfessional("inf-leroy", "10004567896", "60", None, "Anne LEROY", "Cabinet infirmier"),
    DemoProfessional("sf-martin", "10005678908", "50", None, "Julie MARTIN", "Maternité de Reims"),
    DemoProfessional("kine-bernard", "10006789019", "70", None, "Paul BERNARD", "Cabinet de kinésithérapie"),
    DemoProfessional("dent-petit", "10007890121", "40", None, "Luc PETIT", "Cabinet dentaire"),
    # A second GP, not authorised on any record: the attestation journey (issue 13).
    DemoProfessional("dr-roux", "10008901232", "10", "SM26", "Claire ROUX", "Maison de santé des Coteaux"),
    # An emergency physician (SM59, médecine d'urgence): the break-glass journey.
    DemoProfessional("dr-berenger", "10009012344", "10", "SM59", "Hélène BÉRENGER", "SAMU 51 - CHU de Reims"),
]

FAMILY = [
    "MARTIN",
    "BERNARD",
    "THOMAS",
    "PETIT",
    "ROBERT",
    "RICHARD",
    "DURAND",
    "DUBOIS",
    "MOREAU",
    "LAURENT",
    "SIMON",
    "MICHEL",
    "LEFEBVRE",
    "LEROY",
    "ROUX",
    "DAVID",
]
GIVEN_F = ["Marie", "Camille", "Léa", "Chloé", "Inès", "Jeanne", "Louise", "Manon"]
GIVEN_M = ["Jean", "Louis", "Gabriel", "Hugo", "Arthur", "Jules", "Paul", "Noël"]
PLACES = ["75056", "69123", "13055", "51454", "33063", "2A004", "59350", "67482"]


def demo_nir(sex: Sex, born: date, place: str, order: int) -> str:
    first13 = f"{1 if sex is Sex.MALE else 2}{born:%y}{born:%m}{place}{order:03d}"
    return first13 + compute_key(first13)


def qualified_record(ins: Ins, traits: StrictTraits, now: datetime) -> CreationRequest:
    """A record creation as professional software sends it for a qualified INS (demo, benches)."""
    return CreationRequest(
        ins=ins,
        traits=traits,
        identity_status=IdentityStatus.QUAL,
        usual_family_name=None,
        usual_given_name=None,
        consent_at=now,
        consent_channel="professional-software",
    )


def demo_patients(n: int) -> list[StrictTraits]:
    """The showcase patient, then ``n - 1`` generated ones (a prefix of every larger set)."""
    rng = random.Random(42)  # the same demo set on every machine
    out = [SHOWCASE_TRAITS]
    while len(out) < n:
        sex = rng.choice([Sex.FEMALE, Sex.MALE])
        given = rng.choice(GIVEN_F if sex is Sex.FEMALE else GIVEN_M)
        born = date(rng.randint(1935, 2020), rng.randint(1, 12), rng.randint(1, 28))
        out.append(
            StrictTraits(
                birth_family_name=rng.choice(FAMILY),
                birth_given_names=(given,),
                sex=sex,
                birth_date=born,
                birth_place_insee=rng.choice(PLACES),
            )
        )
    return out


SHOWCASE_NIR = "279035121518989"
SHOWCASE_TRAITS = StrictTraits(
    birth_family_name="PAT-TROIS",
    birth_given_names=("Dominique",),
    sex=Sex.FEMALE,
    birth_date=date(1979, 3, 28),
    birth_place_insee="51215",
)
# A child followed for a type 1 diabetes, and her mother, who has a portal account.
MINOR_TRAITS = StrictTraits(
    birth_family_name="NESSI",
    birth_given_names=("Léa", "Jeanne"),
    sex=Sex.FEMALE,
    birth_date=date(2014, 6, 15),
    birth_place_insee="51108",
)
# Known on purpose: this is a demonstration instance. Never reuse them anywhere else.
DEMO_REPRESENTATIVE_EMAIL = "jeanne.nessi@example.org"
DEMO_REPRESENTATIVE_PASSWORD = "Maman-de-Lea-Demo-2026"  # noqa: S105 - public demo credential
DEMO_REPRESENTATIVE_TOTP = "DEMOREPRESENTANTEDMPTOTPSECRETAB"
MINOR_ORDER = 999  # outside the generated patients' orders (100 + index)

CITIES = {
    "51215": Place("Dompremy", "51300"),
    "51108": Place("Châlons-en-Champagne", "51000"),
    "75056": Place("Paris", "75011"),
    "69123": Place("Lyon", "69003"),
    "13055": Place("Marseille", "13001"),
    "51454": Place("Reims", "51100"),
    "33063": Place("Bordeaux", "33000"),
    "2A004": Place("Ajaccio", "20000"),
    "59350": Place("Lille", "59000"),
    "67482": Place("Strasbourg", "67000"),
}
# The demo documents (src/dmp/demo/data). The imaging report's body is a PDF naming the ANS
# example patient, which cannot be rewritten: it goes to the showcase patient only.
LAB_REPORT = "CR-BIO_demo_glycemie.xml"
IMAGING_REPORT = "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"
COMMON_DOCUMENTS = (
    "BIO-TROD_2024.01_COVID-19.xml",
    LAB_REPORT,
    "LDL-SES_2022.01.xml",
    "VAC_2023.01.xml",
    "VSM_1.4_2022.01.xml",
)
MINOR_DOCUMENTS = ("VAC_2023.01.xml", LAB_REPORT, "BIO-TROD_2024.01_COVID-19.xml")
# Published for the minor with INVISIBLE_REPRESENTANTS_LEGAUX: her parents do not see it (AC-27).
MINOR_HIDDEN_FROM_REPRESENTATIVES = ("BIO-TROD_2024.01_COVID-19.xml",)


@dataclass(frozen=True)
class DemoRepresentative:
    guardian: Guardian
    password: str
    totp_secret: str

    @property
    def name(self) -> str:
        return f"{self.guardian.given} {self.guardian.family}"


@dataclass(frozen=True)
class DemoPatient:
    target: Target
    documents: tuple[str, ...]
    representative: DemoRepresentative | None = None
    hidden_from_representatives: tuple[str, ...] = ()

    @property
    def ins(self) -> Ins:
        return self.target.ins

    @property
    def name(self) -> str:
        t = self.target.traits
        return f"{t.birth_given_names[0]} {t.birth_family_name}"


def _target(traits: StrictTraits, nir: str, suffix: str, guardian: Guardian | None = None) -> Target:
    ins = parse_ins(SYSTEM_NIR, nir, allow_test=False)
    return Target(ins, traits, suffix, CITIES.get(traits.birth_place_insee), guardian)


def demo_set(n: int) -> list[DemoPatient]:
    """``n`` demo patients: the showcase patient, ``n - 2`` generated ones and the minor."""
    if n < 2:
        raise ValueError("la démonstration compte au moins deux patients (la patiente vitrine et la mineure)")
    out = []
    for i, traits in enumerate(demo_patients(n - 1)):
        if i == 0:
            out.append(DemoPatient(_target(traits, SHOWCASE_NIR, "0"), (*COMMON_DOCUMENTS, IMAGING_REPORT)))
        else:
            nir = demo_nir(traits.sex, traits.birth_date, traits.birth_place_insee, 100 + i)
            out.append(DemoPatient(_target(traits, nir, str(i)), COMMON_DOCUMENTS))
    mother = Guardian("Jeanne", "NESSI", DEMO_REPRESENTATIVE_EMAIL)
    rep = DemoRepresentative(mother, DEMO_REPRESENTATIVE_PASSWORD, DEMO_REPRESENTATIVE_TOTP)
    t = MINOR_TRAITS
    nir = demo_nir(t.sex, t.birth_date, t.birth_place_insee, MINOR_ORDER)
    out.append(DemoPatient(_target(t, nir, str(MINOR_ORDER), rep.guardian), MINOR_DOCUMENTS, rep,
                           MINOR_HIDDEN_FROM_REPRESENTATIVES))
    return out


class DemoLoadError(Exception):
    """A patient of the demo set could not be loaded; the message is for the operator (French)."""


@dataclass
class LoadReport:
    records_created: int = 0
    documents_published: int = 0


def _examples() -> dict[str, bytes]:
    data = resources.files("dmp.demo").joinpath("data")
    return {n.name: n.read_bytes() for n in data.iterdir() if n.name.endswith(".xml")}


def _doctor_actor() -> tuple[DemoProfessional, Actor]:
    doctor = PROFESSIONALS[0]
    actor = Actor(
        kind=ActorKind.PROFESSIONAL,
        id="8" + doctor.rpps,
        name=doctor.name,
        profession=doctor.profession,
        specialty=doctor.specialty,
    )
    return doctor, actor


def _issue_cards(settings: Settings) -> Path:
    if not (settings.pki_dir / CA_CERT_FILE).exists():
        init_ca(settings.pki_dir)
    cards_dir = settings.var_dir / "demo" / "cards"
    for p in tqdm(PROFESSIONALS, desc="Cartes CPS", unit="carte"):
        out = cards_dir / p.slug
        if not (out / "card.crt").exists():
            issue_card(
                settings.pki_dir,
                rpps=p.rpps,
                profession=p.profession,
                specialty=p.specialty,
                name=p.name,
                structure_id=None,
                structure_name=p.structure,
                out=out,
            )
    return cards_dir


def load_demo(settings: Settings, *, patients: int = 12) -> None:
    rt = build_runtime(settings, pool_size=2)
    upgrade(rt.engine)
    cards_dir = _issue_cards(settings)
    doctor, _ = _doctor_actor()
    demo = demo_set(patients)
    report = load_records(rt, demo)
    total = sum(len(p.documents) for p in demo)
    base = settings.base_url.rstrip("/")
    click.echo(
        f"\n{report.records_created} dossiers créés, {report.documents_published} documents publiés "
        f"(le jeu complet : {len(demo)} dossiers, {total} documents), "
        f"{len(PROFESSIONALS)} cartes CPS dans {cards_dir}."
    )
    click.echo(f"""
Pour essayer l'API (dans un autre terminal, après « dmp serve ») :
  TOKEN=$(dmp client-token --card {cards_dir / doctor.slug})
  curl -H "Authorization: Bearer $TOKEN" "{base}/fhir/Patient?identifier={SYSTEM_NIR}|{SHOWCASE_NIR}"
  curl -H "Authorization: Bearer $TOKEN" \\
    "{base}/fhir/DocumentReference?patient.identifier={SYSTEM_NIR}|{SHOWCASE_NIR}&status=current"
  curl -H "Authorization: Bearer $TOKEN" "{base}/fhir/Binary/<id du document>"
Cartes de démonstration : {", ".join(p.slug for p in PROFESSIONALS)}.""")
    _demo_accounts(rt, settings, SHOWCASE_NIR, demo[-1])


def load_records(rt: Runtime, demo: list[DemoPatient]) -> LoadReport:
    """Load every demo record that is missing or incomplete, each in its own transaction.

    Resumable: a record already complete is left as it is; one created earlier without all its
    documents (an interrupted run) gets the missing ones. A failure leaves the failing record as
    it was before (nothing of it is written) and stops the run with a French message.
    """
    _, actor = _doctor_actor()
    examples = _examples()
    report = LoadReport()
    for p in tqdm(demo, desc="Patients et documents", unit="patient"):
        try:
            created, published = _load_record(rt, actor, p, examples)
        except Exception as exc:
            cause = exc.message if isinstance(exc, DmpError) else f"{type(exc).__name__} : {exc}"
            raise DemoLoadError(
                f"le dossier de {p.name} (INS {p.ins.value}) n'a pas pu être chargé : {cause}. "
                "Rien de ce dossier n'a été écrit ; les dossiers précédents sont complets. "
                "Relancez « dmp demo » pour reprendre le chargement."
            ) from exc
        report.records_created += created
        report.documents_published += published
    return report


def _load_record(rt: Runtime, actor: Actor, p: DemoPatient, examples: dict[str, bytes]) -> tuple[bool, int]:
    """One record, its documents and its representative, in one transaction: (created, published)."""
    blobs = blob_hygiene.TrackedBlobs(rt.blobs)
    record_rt = replace(rt, blobs=blobs)
    created = False
    try:
        with rt.engine.begin() as conn:
            now = datetime.now(UTC)
            row = records.find_by_ins(conn, p.ins)
            created = row is None
            if row is None:
                pid = records.create(conn, rt, actor, qualified_record(p.ins, p.target.traits, now), now)
            else:
                pid = row.id
            present = set(
                conn.execute(
                    select(document_uid.c.unique_id).where(document_uid.c.patient_id == pid)
                ).scalars()
            )
            published = 0
            for name in p.documents:
                content = for_patient(examples[name], p.target)
                header = parse_header(content)
                if master_identifier_value(header.unique_id) in present:
                    continue
                flags = ("INVISIBLE_REPRESENTANTS_LEGAUX",) if name in p.hidden_from_representatives else ()
                bundle = bundle_from_cda(
                    content, header, ins_system=SYSTEM_NIR, ins_value=p.ins.value, flags=flags
                )
                req = parse_provide_bundle(bundle, max_document_bytes=rt.settings.max_document_bytes)
                publish.publish(conn, record_rt, actor, req, now)
                published += 1
            if p.representative is not None:
                _declare_representative(conn, rt, pid, p.representative, now)
    except BaseException:
        # Rolled back: its blobs go, unless a committed document names the same key (same bytes).
        blob_hygiene.discard_after_rollback(rt, blobs.written)
        raise
    return created, published


def _declare_representative(
    conn: Connection, rt: Runtime, patient_id: UUID, rep: DemoRepresentative, now: datetime
) -> None:
    """The legal representative (desk operation) and their portal account with known credentials."""
    from dmp.accounts import add_representative
    from dmp.accounts.service import PENDING, get, provision

    issued = add_representative(
        conn,
        patient_id,
        now,
        settings=rt.settings,
        email=rep.guardian.email,
        name=rep.name,
        agent="dmp demo",
    )
    acc = get(conn, issued.account_id)
    if acc is not None and acc.status == PENDING:
        provision(conn, acc.id, now, settings=rt.settings, password=rep.password, totp_secret=rep.totp_secret)


# ---- web accounts of the demonstration instance (docs/accounts.md) ------------------------------

# Known on purpose: this is a demonstration instance. Never reuse them anywhere else.
DEMO_PATIENT_PASSWORD = "Dossier-Demo-Patiente-2026"  # noqa: S105 - public demo credential
DEMO_PATIENT_TOTP = "DEMOPATIENTEDMPTOTPSECRETJQKXYZW"
DEMO_PRO_PASSWORD = "Cabinet-du-Parc-Demo-2026"  # noqa: S105 - public demo credential
DEMO_PRO_TOTP = "DEMOPROMULLERDMPTOTPSECRETABCDEF"


@dataclass(frozen=True)
class DemoProAccount:
    """A professional's web account of the demonstration instance, with known credentials."""

    slug: str
    password: str
    totp_secret: str
    role: str  # what the account is for, shown in the printed instructions


DEMO_PRO_ACCOUNTS = (
    DemoProAccount("dr-muller", DEMO_PRO_PASSWORD, DEMO_PRO_TOTP, "médecin traitant, auteur des documents"),
    DemoProAccount("dr-roux", "Maison-des-Coteaux-Demo-2026", "DEMOPROROUXDMPTOTPSECRETABCDEFGH",
                   "seconde généraliste, pas encore autorisée"),
    DemoProAccount("dr-david", "Hopital-de-Reims-Demo-2026", "DEMOPRODAVIDDMPTOTPSECRETABCDEF",
                   "cardiologue, pas encore autorisé"),
    DemoProAccount("dr-berenger", "Urgences-SAMU-51-Demo-2026", "DEMOPROURGENCESDMPTOTPSECRETABCD",
                   "médecin urgentiste (bris de glace)"),
)


def demo_professional(slug: str) -> DemoProfessional:
    return next(p for p in PROFESSIONALS if p.slug == slug)


def _demo_pro_account(conn: Connection, settings: Settings, pro: DemoProfessional, acc: DemoProAccount,
                      now: datetime) -> None:
    from dmp.accounts import DirectoryEntry, upsert_professional
    from dmp.accounts.service import PENDING, PRO, find, provision

    found = find(conn, PRO, pro.rpps)
    if found is None:
        upsert_professional(conn, DirectoryEntry(rpps=pro.rpps, profession=pro.profession, name=pro.name,
                                                 specialty=pro.specialty, structure_name=pro.structure),
                            now, settings=settings)
        found = find(conn, PRO, pro.rpps)
    if found is not None and found.status == PENDING:
        provision(conn, found.id, now, settings=settings, password=acc.password, totp_secret=acc.totp_secret)


def _demo_accounts(rt: Runtime, settings: Settings, patient_ins: str, minor: DemoPatient) -> None:
    """The first demo patient's account and the professionals' web accounts, with known credentials
    (the minor's representative's account is provisioned with her record)."""
    from dmp.accounts import create_patient_account, patient_account
    from dmp.accounts.service import PENDING, provision

    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        row = records.find_by_ins(conn, parse_ins(SYSTEM_NIR, patient_ins, allow_test=False))
        if row is not None:
            acc = patient_account(conn, row.id)
            if acc is None:
                create_patient_account(conn, row.id, now, settings=settings)  # no contact: nothing sent
                acc = patient_account(conn, row.id)
            if acc is not None and acc.status == PENDING:
                provision(conn, acc.id, now, settings=settings, password=DEMO_PATIENT_PASSWORD,
                          totp_secret=DEMO_PATIENT_TOTP)
        for pro_acc in DEMO_PRO_ACCOUNTS:
            _demo_pro_account(conn, settings, demo_professional(pro_acc.slug), pro_acc, now)
    base = settings.base_url.rstrip("/")
    totp = 'python -c "import pyotp; print(pyotp.TOTP(\'{}\').now())"'
    pros, representative = _pro_lines(base, totp), _representative_lines(minor, base, totp)
    click.echo(f"""
Se connecter sur l'instance de démonstration (navigateur, après « dmp serve ») :
  Espace patient       {base}/connexion
    identifiant        {patient_ins}  (Dominique PAT-TROIS)
    mot de passe       {DEMO_PATIENT_PASSWORD}
    code à 6 chiffres  application d'authentification, clé {DEMO_PATIENT_TOTP}
                       ou : {totp.format(DEMO_PATIENT_TOTP)}{pros}{representative}
Codes envoyés par courriel ou SMS (comptes activés ensuite, p. ex. « dmp record activation-code ») :
  python -m aiosmtpd -n -l 127.0.0.1:8025 &      (les courriels s'affichent dans ce terminal)
  DMP_SMS_LOG_FILE=var/sms.log DMP_SMTP_HOST=127.0.0.1 DMP_SMTP_PORT=8025 dmp outbox deliver &
  tail -f var/sms.log                            (les SMS)
Instance de démonstration uniquement : ces identifiants sont publics.""")


def _pro_lines(base: str, totp: str) -> str:
    out = f"\n  Espace professionnel {base}/pro/connexion"
    for acc in DEMO_PRO_ACCOUNTS:
        pro = demo_professional(acc.slug)
        out += f"""
    RPPS               {pro.rpps}  ({pro.name}, {acc.role})
    mot de passe       {acc.password}
    code à 6 chiffres  application d'authentification, clé {acc.totp_secret}
                       ou : {totp.format(acc.totp_secret)}"""
    return out


def _representative_lines(minor: DemoPatient, base: str, totp: str) -> str:
    rep = minor.representative
    if rep is None:
        return ""
    born = minor.target.traits.birth_date
    return f"""
  Représentante légale {base}/connexion  ({rep.name}, mère de {minor.name}, mineure née le {born:%d/%m/%Y},
                       INS {minor.ins.value})
    identifiant        {rep.guardian.email}
    mot de passe       {rep.password}
    code à 6 chiffres  application d'authentification, clé {rep.totp_secret}
                       ou : {totp.format(rep.totp_secret)}"""
