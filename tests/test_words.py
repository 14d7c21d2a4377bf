"""Words and dates as people read them: one date-time format, sentence-case headings (allauth's
too), channel names without doubled brackets, short security names in tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format

from accounts.models import Tenant, User
from channels import kinds
from channels import services as channel_services
from channels.kinds import SmtpConfig
from channels.models import Channel, MscServer
from msc_admin.humanize import sentence_case
from tests.test_locking_services import ROOT

MOMENT = datetime(2026, 11, 26, 9, 24, tzinfo=UTC)


def test_one_format_for_date_times_in_the_ui() -> None:
    assert date_format(MOMENT, "DATETIME_FORMAT") == "Nov 26, 2026, 09:24"
    assert date_format(MOMENT, "SHORT_DATETIME_FORMAT") == "Nov 26, 2026, 09:24"
    assert date_format(MOMENT, "DATE_FORMAT") == "Nov 26, 2026"
    # A date-time printed as is (no filter) reads the same.
    assert Template("{{ moment }}").render(Context({"moment": MOMENT})) == "Nov 26, 2026, 09:24"


@pytest.mark.parametrize("language", ["pt-br", "es"])
def test_the_same_format_for_date_times_in_portuguese_and_spanish(language: str) -> None:
    with translation.override(language):
        assert date_format(MOMENT, "DATETIME_FORMAT") == "26 de nov. de 2026, 09:24"
        assert date_format(MOMENT, "SHORT_DATETIME_FORMAT") == "26 de nov. de 2026, 09:24"
        assert date_format(MOMENT, "DATE_FORMAT") == "26 de nov. de 2026"
        february = {"pt-br": "26 de fev. de 2026", "es": "26 de feb. de 2026"}[language]
        assert date_format(MOMENT.replace(month=2), "DATE_FORMAT") == february
        assert Template("{{ moment }}").render(Context({"moment": MOMENT})) == (
            "26 de nov. de 2026, 09:24"
        )


# ``|date`` with a format of its own: only machine output (ISO 8601, a date input's value) may.
OWN_FORMAT = re.compile(r"""\|date:\s*["']([^"']+)["']""")
MACHINE_FORMATS = {"c", "Y-m-d"}
NAMED = {"DATETIME_FORMAT", "SHORT_DATETIME_FORMAT", "DATE_FORMAT", "TIME_FORMAT"}


def test_templates_write_dates_in_the_named_formats_only() -> None:
    found = []
    for path in sorted(ROOT.glob("**/templates/**/*.html")):
        if ".venv" in path.parts:
            continue
        for fmt in OWN_FORMAT.findall(path.read_text()):
            if fmt not in MACHINE_FORMATS | NAMED:
                found.append(f"{path.relative_to(ROOT)}: {fmt}")
    assert not found, 'Use |date:"DATETIME_FORMAT" (or DATE_FORMAT):\n' + "\n".join(found)


def test_sentence_case() -> None:
    assert sentence_case("Two-Factor Authentication") == "Two-factor authentication"
    assert sentence_case("\n  Change Password\n") == "\n  Change password\n"
    assert sentence_case("Sign In Via Google") == "Sign in via Google"
    assert sentence_case("Add a Third-Party Account") == "Add a third-party account"
    assert sentence_case("Activate TOTP") == "Activate TOTP"
    assert sentence_case('<span class="Big">Recovery Codes</span>') == (
        '<span class="Big">Recovery codes</span>'
    )
    # allauth's Portuguese and Spanish titles: accented words are words, proper nouns stay.
    assert sentence_case("Autenticação De Dois Fatores") == "Autenticação de dois fatores"
    assert sentence_case("Códigos De Recuperação") == "Códigos de recuperação"
    assert sentence_case("Cambiar Contraseña") == "Cambiar contraseña"
    assert sentence_case("Iniciar Sesión Con Google") == "Iniciar sesión con Google"
    assert sentence_case("Confirmar Área Única") == "Confirmar área única"
    assert sentence_case("Ativar TOTP") == "Ativar TOTP"


@pytest.mark.django_db
def test_allauth_pages_read_in_sentence_case(rep_client: Client) -> None:
    page = rep_client.get(reverse("account_change_password")).content.decode()
    assert re.search(r"<title>\s*Change password\s*· msc-admin</title>", page)
    assert re.search(r"<h1>\s*Change password\s*</h1>", page)
    assert "Change Password" not in page
    page = rep_client.get(reverse("mfa_index")).content.decode()
    assert re.search(r"<h1>\s*Two-factor authentication\s*</h1>", page)
    assert re.search(r"<h2>\s*Authenticator app\s*</h2>", page)
    assert "Two-Factor" not in page and "Authenticator App" not in page


@pytest.mark.django_db
def test_a_channel_with_a_detail_names_its_kind_without_doubled_brackets(
    acme: Tenant, rep_user: User
) -> None:
    for kind in kinds.KINDS.values():
        channel = Channel(tenant=acme, owner=rep_user, kind=kind.value)
        channel.account_email = "rep@acme.test"
        channel.config = {"host": "smtp.example.com"}
        label = channel.label
        assert label.count("(") <= 1 and "((" not in label and ") (" not in label, label
    gmail = Channel(tenant=acme, owner=rep_user, kind=kinds.ChannelKind.GMAIL)
    gmail.account_email = "rep@acme.test"
    assert gmail.label == "Gmail (rep@acme.test)"


@pytest.mark.django_db
def test_the_team_channel_says_plainly_who_sends_through_it(
    rep_client: Client, acme: Tenant, admin_user: User
) -> None:
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=SmtpConfig(host="smtp.example.com", username="team"),
        password="team-secret",
        use_for_all_members=True,
    )
    page = rep_client.get(reverse("channels:overview") + "?section=team").content.decode()
    assert (
        "Team channel: Custom SMTP. Everyone's default identity sends through it, unless they "
        "choose another channel for it under Identities."
    ) in page.replace("&#x27;", "'")
    assert "the default for every member" not in page


@pytest.mark.django_db
def test_the_staff_server_table_shows_the_security_by_its_name(staff_client: Client) -> None:
    MscServer.objects.create(name="msc-relay-1", host="relay.example.com", username="pool")
    page = staff_client.get(reverse("staff:servers")).content.decode()
    assert '<td data-label="Security">STARTTLS</td>' in page
    assert "usually port 587" not in page.split('id="servers"')[1].split("</table>")[0]
