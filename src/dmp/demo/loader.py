"""``dmp demo``: a realistic demo instance (patients, professionals, ANS example documents)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources

import click
from tqdm import tqdm

from dmp.auth.pki import CA_CERT_FILE, init_ca, issue_card
from dmp.bootstrap import build_runtime
from dmp.cda import parse_header
from dmp.demo.bundles import bundle_from_cda
from dmp.domain.actor import Actor, ActorKind
from dmp.domain.identity import IdentityStatus, Sex, StrictTraits
from dmp.domain.ins import SYSTEM_NIR, Ins, compute_key, parse_ins
from dmp.fhir.bundle import parse_provide_bundle
from dmp.fhir.patient import CreationRequest
from dmp.services import publish, records
from dmp.services.context import Runtime
from dmp.settings import Settings
from dmp.store.db import upgrade


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
    rng = random.Random(42)  # the same demo set on every machine
    out = [
        StrictTraits(
            birth_family_name="PAT-TROIS",
            birth_given_names=("Dominique",),
            sex=Sex.FEMALE,
            birth_date=date(1979, 3, 28),
            birth_place_insee="51215",
        )
    ]
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


def load_demo(settings: Settings, *, patients: int = 12) -> None:
    rt = build_runtime(settings, pool_size=2)
    upgrade(rt.engine)
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
    doctor = PROFESSIONALS[0]
    actor = Actor(
        kind=ActorKind.PROFESSIONAL,
        id="8" + doctor.rpps,
        name=doctor.name,
        profession=doctor.profession,
        specialty=doctor.specialty,
    )
    examples = [
        resources.files("dmp.demo").joinpath("data", name).read_bytes()
        for name in sorted(
            n.name for n in resources.files("dmp.demo").joinpath("data").iterdir() if n.name.endswith(".xml")
        )
    ]
    created = published = 0
    now = datetime.now(UTC)
    first_ins = ""
    for i, traits in enumerate(tqdm(demo_patients(patients), desc="Patients et documents", unit="patient")):
        nir = (
            "279035121518989"
            if i == 0
            else demo_nir(traits.sex, traits.birth_date, traits.birth_place_insee, 100 + i)
        )
        first_ins = first_ins or nir
        ins = parse_ins(SYSTEM_NIR, nir, allow_test=False)
        with rt.engine.begin() as conn:
            if records.find_by_ins(conn, ins) is not None:
                continue
            records.create(conn, rt, actor, qualified_record(ins, traits, now), now)
            created += 1
        for j, content in enumerate(examples):
            header = parse_header(content)
            bundle = bundle_from_cda(
                content, header, ins_system=SYSTEM_NIR, ins_value=nir, unique_id=f"{header.unique_id}.{i}.{j}"
            )
            req_b = parse_provide_bundle(bundle, max_document_bytes=settings.max_document_bytes)
            with rt.engine.begin() as conn:
                publish.publish(conn, rt, actor, req_b, datetime.now(UTC))
            published += 1
    base = settings.base_url.rstrip("/")
    click.echo(
        f"\n{created} dossiers créés, {published} documents publiés, "
        f"{len(PROFESSIONALS)} cartes CPS dans {cards_dir}."
    )
    click.echo(f"""
Pour essayer l'API (dans un autre terminal, après « dmp serve ») :
  TOKEN=$(dmp client-token --card {cards_dir / doctor.slug})
  curl -H "Authorization: Bearer $TOKEN" "{base}/fhir/Patient?identifier={SYSTEM_NIR}|{first_ins}"
  curl -H "Authorization: Bearer $TOKEN" \\
    "{base}/fhir/DocumentReference?patient.identifier={SYSTEM_NIR}|{first_ins}&status=current"
  curl -H "Authorization: Bearer $TOKEN" "{base}/fhir/Binary/<id du document>"
Cartes de démonstration : {", ".join(p.slug for p in PROFESSIONALS)}.""")
    _demo_accounts(rt, settings, first_ins or "279035121518989", doctor)



# ---- web accounts of the demonstration instance (docs/accounts.md) ------------------------------

# Known on purpose: this is a demonstration instance. Never reuse them anywhere else.
DEMO_PATIENT_PASSWORD = "Dossier-Demo-Patiente-2026"  # noqa: S105 - public demo credential
DEMO_PATIENT_TOTP = "DEMOPATIENTEDMPTOTPSECRETJQKXYZW"
DEMO_PRO_PASSWORD = "Cabinet-du-Parc-Demo-2026"  # noqa: S105 - public demo credential
DEMO_PRO_TOTP = "DEMOPROMULLERDMPTOTPSECRETABCDEF"


def _demo_accounts(rt: Runtime, settings: Settings, patient_ins: str, doctor: DemoProfessional) -> None:
    """The first demo patient's account and dr-muller's web account, with known credentials."""
    from dmp.accounts import DirectoryEntry, create_patient_account, patient_account, upsert_professional
    from dmp.accounts.service import PENDING, PRO, find, provision

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
        pro = find(conn, PRO, doctor.rpps)
        if pro is None:
            upsert_professional(conn, DirectoryEntry(rpps=doctor.rpps, profession=doctor.profession,
                                                     name=doctor.name, specialty=doctor.specialty,
                                                     structure_name=doctor.structure), now, settings=settings)
            pro = find(conn, PRO, doctor.rpps)
        if pro is not None and pro.status == PENDING:
            provision(conn, pro.id, now, settings=settings, password=DEMO_PRO_PASSWORD,
                      totp_secret=DEMO_PRO_TOTP)
    base = settings.base_url.rstrip("/")
    totp = 'python -c "import pyotp; print(pyotp.TOTP(\'{}\').now())"'
    click.echo(f"""
Se connecter sur l'instance de démonstration (navigateur, après « dmp serve ») :
  Espace patient       {base}/connexion
    identifiant        {patient_ins}  (Dominique PAT-TROIS)
    mot de passe       {DEMO_PATIENT_PASSWORD}
    code à 6 chiffres  application d'authentification, clé {DEMO_PATIENT_TOTP}
                       ou : {totp.format(DEMO_PATIENT_TOTP)}
  Espace professionnel {base}/pro/connexion
    RPPS               {doctor.rpps}  ({doctor.name})
    mot de passe       {DEMO_PRO_PASSWORD}
    code à 6 chiffres  application d'authentification, clé {DEMO_PRO_TOTP}
                       ou : {totp.format(DEMO_PRO_TOTP)}
Codes envoyés par courriel ou SMS (comptes activés ensuite, p. ex. « dmp record activation-code ») :
  python -m aiosmtpd -n -l 127.0.0.1:8025 &      (les courriels s'affichent dans ce terminal)
  DMP_SMS_LOG_FILE=var/sms.log DMP_SMTP_HOST=127.0.0.1 DMP_SMTP_PORT=8025 dmp outbox deliver &
  tail -f var/sms.log                            (les SMS)
Instance de démonstration uniquement : ces identifiants sont publics.""")
