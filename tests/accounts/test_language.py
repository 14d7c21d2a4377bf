"""A person's language: their own choice on their account page wins, else their browser's;
signed-out visitors pick one on the sign-in page; email is written in the recipient's language,
from a request or from a task; dates and numbers follow it."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.language import in_language_of, language_for
from accounts.models import Membership, Role, Tenant, User
from accounts.tasks import send_invitation
from msc_admin.humanize import number, percent_of
from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served

COOKIE = settings.LANGUAGE_COOKIE_NAME


def _page(client: Client, url: str, **headers: str) -> str:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response
    return html.unescape(response.content.decode())


def test_the_account_page_offers_each_language_named_in_itself(rep_client: Client) -> None:
    page = _page(rep_client, reverse("accounts:settings"))
    assert 'action="/settings/language/"' in page
    for value, name in [
        ("", "Browser's language"),
        ("en", "English"),
        ("pt-br", "Português (Brasil)"),
        ("es", "Español"),
    ]:
        assert f'<option value="{value}"' in page and f">{name}</option>" in page


def test_a_persons_own_language_wins_over_their_browsers(
    rep_client: Client, rep_user: User
) -> None:
    response = rep_client.post(reverse("accounts:language"), {"language": "pt-br"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:settings")
    rep_user.refresh_from_db()
    assert rep_user.language == "pt-br"
    # The cookie follows, so the sign-in page keeps it after signing out.
    assert response.cookies[COOKIE].value == "pt-br"

    # The browser asks for Spanish (header and cookie): the person's choice wins.
    rep_client.cookies[COOKIE] = "es"
    response = rep_client.get(reverse("accounts:settings"), headers={"accept-language": "es"})
    page = html.unescape(response.content.decode())
    assert response["Content-Language"] == "pt-br"
    assert '<html lang="pt-br">' in page
    assert "Idioma: Português (Brasil)." in page  # the confirmation, in the new language
    assert "<h1>Configurações</h1>" in page and "Salvar seu nome" in page
    assert "Settings" not in page and "Save your name" not in page and "Configuración" not in page
    # The page depends on who is signed in and on the browser: caches must keep them apart.
    vary = {v.strip() for v in response["Vary"].split(",")}
    assert {"Cookie", "Accept-Language"} <= vary


def test_the_browsers_language_is_the_default_and_can_be_chosen_again(
    rep_client: Client, rep_user: User
) -> None:
    assert "<h1>Configuración</h1>" in _page(
        rep_client, reverse("accounts:settings"), accept_language="es"
    )
    rep_user.language = "pt-br"
    rep_user.save(update_fields=["language"])

    response = rep_client.post(
        reverse("accounts:language"), {"language": ""}, headers={"accept-language": "es"}
    )
    rep_user.refresh_from_db()
    assert rep_user.language == ""
    assert response.cookies[COOKIE].value == ""  # deleted: the browser's Accept-Language rules
    page = _page(rep_client, reverse("accounts:settings"), accept_language="es")
    assert "Las páginas siguen el idioma de tu navegador." in page
    assert "<h1>Configuración</h1>" in page and "Configurações" not in page


def test_a_language_not_offered_is_refused_and_nothing_changes(
    rep_client: Client, rep_user: User
) -> None:
    response = rep_client.post(reverse("accounts:language"), {"language": "fr"}, follow=True)
    assert "Choose one of the languages offered." in response.content.decode()
    rep_user.refresh_from_db()
    assert rep_user.language == ""


def test_staff_choose_their_language_on_their_staff_account_page(
    staff_client: Client, staff_user: User
) -> None:
    staff_user.last_login = datetime(2026, 11, 26, 9, 24, tzinfo=UTC)
    staff_user.save(update_fields=["last_login"])
    response = staff_client.post(reverse("accounts:language"), {"language": "es"})
    assert response["Location"] == reverse("staff:account")
    staff_user.refresh_from_db()
    assert staff_user.language == "es"
    page = _page(staff_client, reverse("staff:account"))
    assert "<h1>Tu cuenta de la plataforma</h1>" in page and "Your staff account" not in page
    assert "Verificación en dos pasos" in page and "Two-factor" not in page
    assert ">26 de nov. de 2026, 09:24</time>" in page  # the last sign-in, in Spanish format


def test_visitors_follow_their_browser_and_may_pick_a_language() -> None:
    visitor = Client(enforce_csrf_checks=True)
    login = reverse("account_login")
    page = _page(visitor, login, accept_language="es")
    assert "<h1>Iniciar sesión en msc-admin</h1>" in page and "Sign in to" not in page
    assert '<html lang="es">' in page
    # The footer's choice names each language in itself, English too (not "Inglés").
    for code, name in (("en", "English"), ("pt-br", "Português (Brasil)"), ("es", "Español")):
        assert f'<option value="{code}" lang="{code}"' in page and f">{name}</option>" in page
    assert "Inglés" not in page

    # set_language takes a POST with the page's CSRF token, and nothing else.
    refused = visitor.post(reverse("set_language"), {"language": "pt-br", "next": login})
    assert refused.status_code == 403 and COOKIE not in refused.cookies
    assert visitor.get(reverse("set_language")).status_code == 405
    token = visitor.cookies[settings.CSRF_COOKIE_NAME].value
    chosen = visitor.post(
        reverse("set_language"),
        {"language": "pt-br", "next": login, "csrfmiddlewaretoken": token},
    )
    assert chosen.status_code == 302 and chosen["Location"] == login
    page = _page(visitor, login, accept_language="es")
    assert "<h1>Entrar no msc-admin</h1>" in page and "Iniciar sesión" not in page
    # allauth's own words on its pages come out in the language too.
    page = _page(visitor, reverse("account_reset_password"), accept_language="es")
    assert "Redefinição de senha" in page or "Redefinir senha" in page, page


def test_an_invitation_is_written_in_the_inviters_language_while_the_invitee_has_none(
    admin_client: Client, admin_user: User, acme: Tenant
) -> None:
    # The inviter reads Spanish by their browser: the invitee, who has no account yet, gets it.
    admin_client.post(
        reverse("accounts:users"),
        {"email": "nueva@acme.test", "role": "rep"},
        headers={"accept-language": "es"},
    )
    (invitation,) = mail.outbox
    assert invitation.subject == "Te invitaron a Acme en msc-admin"
    assert "te invitó a unirte a Acme en msc-admin como Vendedor." in invitation.body
    assert "(el enlace funciona una vez y caduca en 3 días):" in invitation.body
    assert "invited you" not in invitation.body and "Hello" not in invitation.body
    assert Membership.objects.get(user__email="nueva@acme.test").user.language == ""


def test_an_invitation_sent_from_a_task_uses_the_recipients_own_language(
    acme: Tenant, admin_user: User
) -> None:
    """A task has no request and runs in the site's language: the email still comes out in the
    recipient's, or the inviter's own, or the inviting request's."""
    membership = MembershipFactory(
        tenant=acme,
        role=Role.REP,
        user__email="pat@acme.test",
        invited_by=admin_user,
        joined_at=None,
    )
    assert translation.get_language() in ("en", "en-us")

    send_invitation(membership.pk, "pt-br")  # the inviting request was in Portuguese
    assert mail.outbox[-1].subject == "Você foi convidado para a equipe Acme no msc-admin"

    admin_user.language = "es"  # the inviter's own choice wins over their request's
    admin_user.save(update_fields=["language"])
    send_invitation(membership.pk, "pt-br")
    assert mail.outbox[-1].subject == "Te invitaron a Acme en msc-admin"

    membership.user.language = "pt-br"  # and the recipient's own over both
    membership.user.save(update_fields=["language"])
    send_invitation(membership.pk, "es")
    assert mail.outbox[-1].subject == "Você foi convidado para a equipe Acme no msc-admin"
    assert translation.get_language() in ("en", "en-us")  # the task's language is restored


def test_in_language_of_takes_users_and_addresses(rep_user: User) -> None:
    rep_user.language = "es"
    rep_user.save(update_fields=["language"])
    assert language_for("REP@acme.test") == "es"
    assert language_for("nobody@acme.test", rep_user) == "es"
    assert language_for("nobody@acme.test", default="pt-BR") == "pt-br"
    assert language_for(None, default="fr") == "en"
    with in_language_of(rep_user) as code:
        assert code == "es" and translation.get_language() == "es"


def test_numbers_and_rates_follow_the_language() -> None:
    assert (number(1234567), percent_of(1, 3)) == ("1,234,567", "33.3 %")
    with translation.override("pt-br"):
        assert (number(1234567), percent_of(1, 1250)) == ("1.234.567", "0,08 %")
    with translation.override("es"):
        assert percent_of(1, 3) == "33,3 %"


def test_allauths_emails_are_in_the_recipients_own_language(rep_user: User) -> None:
    """A password reset asked for from an English browser reaches a person who reads Spanish in
    Spanish; someone without a language of their own gets the page's."""
    rep_user.language = "es"
    rep_user.save(update_fields=["language"])
    visitor = Client()
    visitor.post(
        reverse("account_reset_password"),
        {"email": "rep@acme.test"},
        headers={"accept-language": "en"},
    )
    (reset,) = mail.outbox
    assert "Correo electrónico para restablecer contraseña" in reset.subject
    assert "Password Reset" not in reset.subject

    rep_user.language = ""
    rep_user.save(update_fields=["language"])
    visitor.post(
        reverse("account_reset_password"),
        {"email": "rep@acme.test"},
        headers={"accept-language": "pt-br"},
    )
    assert "E-mail de redefinição de senha" in mail.outbox[-1].subject


def test_signing_in_says_so_in_the_accounts_language_not_the_browsers(rep_user: User) -> None:
    User.objects.filter(pk=rep_user.pk).update(language="es")
    visitor = Client()
    response = visitor.post(
        reverse("account_login"),
        {"login": rep_user.email, "password": PASSWORD},
        headers={"accept-language": "en"},
        follow=True,
    )
    page = html.unescape(response.content.decode())
    assert "Iniciaste sesión como" in page, page  # the glossary's "tú", not allauth's "usted"
    assert "Successfully signed in" not in page and "Ha iniciado sesión" not in page


def test_spanish_form_errors_and_sign_in_words_say_tu() -> None:
    visitor = Client()
    response = visitor.post(
        reverse("account_login"),
        {"login": "nobody@acme.test", "password": "wrong-password-1"},
        headers={"accept-language": "es"},
    )
    page = html.unescape(response.content.decode())
    assert "El correo electrónico o la contraseña que escribiste no son correctos." in page
    reset = _page(visitor, reverse("account_reset_password"), accept_language="es")
    assert "¿Olvidaste tu contraseña? Escribe tu dirección" in reset
    assert "Introduzca" not in reset and "Ha olvidado" not in reset
