"""Outbox templates, recipients, settings and backoff (no database, no network)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dmp.outbox import EMAIL, SMS, TEMPLATES, Backoff, MailSettings, OutgoingMessage, render
from dmp.outbox.config import SmsSettings
from dmp.outbox.privacy import mask_email, mask_phone, normalize_recipient, scrub
from dmp.outbox.templates import format_datetime_fr, format_param, prepare_params
from dmp.outbox.transports import build_email

NOW = datetime(2026, 7, 14, 21, 5, tzinfo=UTC)  # 23:05 in Paris (summer time)

EXPECTED = {
    "otp_code", "account_activation", "break_glass_alert", "centre15_alert", "new_professional_access",
    "new_document", "medecin_traitant_record_opened", "majority_notice", "password_changed",
    "announcement_reminder",
}


def sample(code: str) -> dict[str, str | int | date | datetime]:
    values: dict[str, str | int | date | datetime] = {
        "code": "482913", "minutes": 10, "link": "https://dmp.example.org/activation/abc",
        "valid_until": NOW, "professional": "Dr Hélène BÉRANGER", "at": NOW,
        "reason": "Patiente inconsciente",
        "author": "Dr Jérôme LEFÈVRE", "patient": "Mme Élise MARTIN", "majority_date": date(2026, 7, 14),
        "submitted": NOW, "reference": "DocumentReference/5f0c8c1e-0000-4000-8000-000000000001",
    }
    return {name: values[name] for name in TEMPLATES[code].params}


def test_every_template_of_the_issue_exists() -> None:
    assert set(TEMPLATES) == EXPECTED


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_template_renders_in_french_on_both_channels(code: str) -> None:
    params = prepare_params(code, sample(code))
    mail = render(code, params, EMAIL)
    assert mail.subject and "$" not in mail.subject and "\n" not in mail.subject
    assert mail.text.startswith("Bonjour,\n\n") and "$" not in mail.text
    assert "L'équipe du Dossier Médical Partagé (DMP)" in mail.text
    assert "DMP" in mail.subject
    sms = render(code, params, SMS)
    assert sms.subject == "" and sms.text.startswith("DMP : ") and "$" not in sms.text
    assert len(sms.text) <= 160 * 2  # two SMS at most


def test_break_glass_alert_text() -> None:
    params = prepare_params("break_glass_alert", sample("break_glass_alert"))
    text = render("break_glass_alert", params, EMAIL).text
    assert ("Votre DMP a été consulté en urgence (bris de glace) par Dr Hélène BÉRANGER, "
            "le 14/07/2026 à 23:05.\nMotif : Patiente inconsciente") in text


def test_otp_code_text() -> None:
    params = prepare_params("otp_code", {"code": "004213", "minutes": 10})
    assert params == {"code": "004213", "minutes": "10"}
    assert "Votre code à usage unique est : 004213\n\nIl est valable 10 minutes" in render(
        "otp_code", params, EMAIL).text


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="modèle de message inconnu"):
        prepare_params("bienvenue", {})
    with pytest.raises(ValueError, match="manquant"):
        prepare_params("break_glass_alert", {"professional": "x", "at": NOW})
    with pytest.raises(ValueError, match="inattendu"):
        prepare_params("password_changed", {"at": NOW, "ins": "279035121518989"})
    with pytest.raises(ValueError, match="fuseau horaire"):
        prepare_params("password_changed", {"at": datetime(2026, 1, 1)})  # noqa: DTZ001
    with pytest.raises(ValueError, match="type de paramètre"):
        prepare_params("otp_code", {"code": 1.5, "minutes": True})  # type: ignore[dict-item]


def test_values_cannot_forge_headers_lines_or_placeholders() -> None:
    params = prepare_params("break_glass_alert", {
        "professional": "Dr X\r\nBcc: victime@example.org", "at": NOW, "reason": "$code ${at}\u2028fin"})
    mail = render("break_glass_alert", params, EMAIL)
    assert "par Dr X Bcc: victime@example.org, le" in mail.text
    assert "Motif : $code ${at} fin\n" in mail.text
    msg = build_email(OutgoingMessage(uuid.uuid4(), EMAIL, "a@example.org", "break_glass_alert",
                                      mail.subject, mail.text), MailSettings())
    assert msg["Bcc"] is None
    assert format_param("x" * 1000).endswith("…") and len(format_param("x" * 1000)) == 300


def test_dates_in_paris_time() -> None:
    assert format_datetime_fr(datetime(2026, 1, 15, 8, 0, tzinfo=UTC)) == "15/01/2026 à 09:00"
    assert format_datetime_fr(datetime(2026, 7, 15, 8, 0, tzinfo=UTC)) == "15/07/2026 à 10:00"
    assert format_param(date(2026, 3, 1)) == "01/03/2026"


def test_email_is_plain_text_utf8() -> None:
    mid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    msg = build_email(OutgoingMessage(mid, EMAIL, "a@example.org", "otp_code", "Sujet é", "Corps à lire"),
                      MailSettings(mail_from="Dossier Médical Partagé <ne-pas-repondre@dmp.example.org>"))
    assert msg["Message-ID"] == f"<{mid}@dmp.example.org>"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg["Content-Language"] == "fr" and msg["Auto-Submitted"] == "auto-generated"
    wire = msg.as_bytes()
    assert wire.isascii() and b"=?utf-8?" in wire


# ---- recipients ---------------------------------------------------------------------------------


def test_recipients_are_normalised_or_refused() -> None:
    assert normalize_recipient(SMS, "06 12 34 56 78") == "+33612345678"
    assert normalize_recipient(SMS, "0033 6.12.34.56.78") == "+33612345678"
    assert normalize_recipient(SMS, "+262 692 12 34 56") == "+262692123456"
    assert normalize_recipient(EMAIL, " marie@exemple.fr ") == "marie@exemple.fr"
    for channel, bad in [(SMS, "12"), (SMS, "+33 6 12 34 56 78 99 99 99"), (EMAIL, "marie"),
                         (EMAIL, "a@b"), (EMAIL, "a@b.fr\r\nBcc: c@d.fr"), (EMAIL, "a b@c.fr")]:
        with pytest.raises(ValueError) as exc:
            normalize_recipient(channel, bad)
        assert bad.strip() not in str(exc.value)
    with pytest.raises(ValueError, match="canal inconnu"):
        normalize_recipient("pigeon", "x")


def test_masks_and_scrubbing() -> None:
    assert mask_email("marie.dupont@example.org") == "m***@e***.org"
    assert mask_phone("+33612345678") == "+33*******78"
    text = scrub('refus {"Marie.Dupont@Example.org": (550, b"inconnu")} autre: paul@x.fr 0612345678',
                 "marie.dupont@example.org")
    assert text == 'refus {"<destinataire>": (550, b"inconnu")} autre: <adresse> <numéro>'
    assert len(scrub("x" * 1000)) == 300


# ---- settings and backoff -----------------------------------------------------------------------


def test_mail_settings_from_env() -> None:
    s = MailSettings.from_env({})
    assert (s.host, s.port, s.tls, s.user, s.envelope_from) == ("localhost", 25, "none", None,
                                                                 "ne-pas-repondre@localhost")
    s = MailSettings.from_env({"DMP_SMTP_HOST": "smtp.example.org", "DMP_SMTP_TLS": "starttls",
                               "DMP_SMTP_USER": "dmp", "DMP_SMTP_PASSWORD": "secret",
                               "DMP_MAIL_FROM": "DMP <ne-pas-repondre@dmp.example.org>",
                               "DMP_SMTP_CA_FILE": "/etc/ssl/ca.pem", "DMP_SMTP_TIMEOUT": "12"})
    assert (s.port, s.tls, s.domain, s.timeout, s.ca_file) == (587, "starttls", "dmp.example.org", 12.0,
                                                               Path("/etc/ssl/ca.pem"))
    assert "secret" not in repr(s)
    assert MailSettings.from_env({"DMP_SMTP_TLS": "TLS"}).port == 465
    assert MailSettings.from_env({"DMP_SMTP_PORT": "2525"}).port == 2525


@pytest.mark.parametrize("env,message", [
    ({"DMP_SMTP_TLS": "ssl"}, "DMP_SMTP_TLS doit valoir"),
    ({"DMP_SMTP_PORT": "vingt-cinq"}, "doivent être des nombres"),
    ({"DMP_SMTP_PORT": "70000"}, "DMP_SMTP_PORT invalide"),
    ({"DMP_SMTP_USER": "dmp"}, "vont ensemble"),
    ({"DMP_SMTP_HOST": "smtp.example.org", "DMP_SMTP_USER": "u", "DMP_SMTP_PASSWORD": "p"},
     "sans chiffrement"),
    ({"DMP_MAIL_FROM": "personne"}, "DMP_MAIL_FROM invalide"),
])
def test_mail_settings_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MailSettings.from_env(env)


def test_credentials_in_clear_are_allowed_to_a_local_relay() -> None:
    s = MailSettings.from_env({"DMP_SMTP_HOST": "127.0.0.1", "DMP_SMTP_USER": "u", "DMP_SMTP_PASSWORD": "p"})
    assert s.user == "u"


def test_sms_settings_from_env() -> None:
    assert SmsSettings.from_env({}).log_file is None
    assert SmsSettings.from_env({"DMP_SMS_LOG_FILE": "var/sms.log"}).log_file == Path("var/sms.log")


def test_backoff_is_exponential_capped_and_deterministically_jittered() -> None:
    b = Backoff()
    mid = uuid.uuid4()
    for attempts, raw in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (30, 3600), (10_000, 3600)]:
        d = b.delay(attempts, mid)
        assert timedelta(seconds=raw * 0.8) <= d <= timedelta(seconds=raw)
        assert d == b.delay(attempts, mid)
    delays = {Backoff().delay(1, uuid.uuid4()) for _ in range(20)}
    assert len(delays) > 1  # messages failed together do not all come back together
    assert Backoff(jitter=0).delay(3, mid) == timedelta(minutes=2)


def test_announcement_reminder_text() -> None:
    params = prepare_params("announcement_reminder", sample("announcement_reminder"))
    text = render("announcement_reminder", params, EMAIL).text
    assert "Un document déposé le 14/07/2026 à 23:05 attend toujours sa consultation d'annonce" in text
