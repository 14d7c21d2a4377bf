"""Identities (add, verify by emailed link, resend) and the routing rules."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services
from channels.kinds import ChannelKind, SmtpConfig
from channels.models import Channel, Identity
from channels.routing import Source, route


@pytest.fixture(autouse=True)
def _commit_callbacks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())


def _link() -> str:
    match = re.search(r"https?://[^/]+(/channels/identities/verify/[^\s]+/)", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_the_default_identity_is_the_sign_in_address(rep_client: Client, rep_user: User) -> None:
    rep_client.get(reverse("channels:overview"))
    identity = Identity.objects.get(user=rep_user)
    assert identity.is_default and identity.is_verified and identity.email == "rep@acme.test"


def test_adding_an_identity_sends_a_link_that_verifies_it(
    rep_client: Client, rep_user: User
) -> None:
    response = rep_client.post(
        reverse("channels:identity_add"), {"email": "Rick@Sales.Acme.test", "name": "Rick at Sales"}
    )
    assert response.status_code == 302
    identity = Identity.objects.get(email="rick@sales.acme.test")
    assert not identity.is_verified
    assert mail.outbox[-1].to == ["rick@sales.acme.test"]
    link = _link()
    # Opening the link (as a mail scanner would) changes nothing; the button does.
    page = Client().get(link)
    assert page.status_code == 200 and b"Confirm this address" in page.content
    identity.refresh_from_db()
    assert not identity.is_verified
    done = Client().post(link)
    assert b"is confirmed" in done.content
    identity.refresh_from_db()
    assert identity.is_verified


def test_a_tampered_link_is_refused(rep_client: Client, rep_user: User) -> None:
    rep_client.post(reverse("channels:identity_add"), {"email": "x@acme.test", "name": "X"})
    link = _link()
    response = Client().post(link.replace("/verify/", "/verify/a"))
    assert response.status_code == 404
    assert not Identity.objects.get(email="x@acme.test").is_verified


def test_resend_sends_a_new_link(rep_client: Client, rep_user: User) -> None:
    rep_client.post(reverse("channels:identity_add"), {"email": "x@acme.test", "name": "X"})
    identity = Identity.objects.get(email="x@acme.test")
    rep_client.post(reverse("channels:identity_resend", args=[identity.pk]))
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "nope", "name": "X"}, "Enter a valid email address"),
        ({"email": "x@acme.test", "name": "Evil\r\nBcc: all@x.test"}, "cannot contain line breaks"),
        ({"email": "rep@acme.test", "name": "Dup"}, "You already have this address"),
    ],
)
def test_bad_identities_are_refused_with_a_reason(
    rep_client: Client, rep_user: User, data: dict[str, str], message: str
) -> None:
    rep_client.get(reverse("channels:overview"))
    response = rep_client.post(reverse("channels:identity_add"), data, follow=True)
    assert message in response.content.decode()
    assert Identity.objects.filter(user=rep_user).count() == 1


def test_another_users_identity_answers_404(
    rep_client: Client, admin_user: User, acme: Tenant
) -> None:
    theirs = services.identity_ensure_default(user=admin_user, tenant=acme)
    assert rep_client.post(reverse("channels:identity_resend", args=[theirs.pk])).status_code == 404
    assert (
        rep_client.post(reverse("channels:identity_channel", args=[theirs.pk])).status_code == 404
    )


def _smtp(tenant: Tenant, owner: User | None, actor: User, **kw: object) -> Channel:
    config = SmtpConfig(host="localhost", port=2525, username="u", sending_domain="acme.test")
    return services.channel_save_smtp(
        tenant=tenant,
        actor=actor,
        owner=owner,
        config=config,
        password="p",
        **kw,  # type: ignore[arg-type]
    )


def test_the_first_channel_goes_to_every_identity_then_each_picks(
    rep_client: Client, rep_user: User, acme: Tenant
) -> None:
    default = services.identity_ensure_default(user=rep_user, tenant=acme)
    other = Identity.objects.create(tenant=acme, user=rep_user, email="o@acme.test", name="O")
    first = _smtp(acme, rep_user, rep_user)
    default.refresh_from_db()
    other.refresh_from_db()
    assert default.channel == first and other.channel == first
    # A mailbox that its provider lets send as o@acme.test (an alias).
    later = Channel.objects.create(
        tenant=acme,
        owner=rep_user,
        kind=ChannelKind.GMAIL,
        account_email=rep_user.email,
        send_as=["o@acme.test"],
    )
    other.refresh_from_db()
    assert other.channel == first  # later channels do not move identities
    response = rep_client.post(
        reverse("channels:identity_channel", args=[other.pk]), {"channel": str(later.pk)}
    )
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.channel == later


def test_routing_rules(acme: Tenant, admin_user: User, rep_user: User) -> None:
    team = _smtp(acme, None, admin_user, use_for_all_members=True)
    default = services.identity_ensure_default(user=rep_user, tenant=acme)
    assert route(user=rep_user, identity=default, source=Source.WEB).channel == team
    assert not route(user=rep_user, identity=None, source=Source.GMAIL_PLUGIN).channel
    gmail = Channel.objects.create(tenant=acme, owner=rep_user, kind=ChannelKind.GMAIL)
    exchange = Channel.objects.create(tenant=acme, owner=rep_user, kind=ChannelKind.EXCHANGE_ONLINE)
    assert route(user=rep_user, identity=default, source=Source.GMAIL_PLUGIN).channel == gmail
    assert route(user=rep_user, identity=default, source=Source.O365_PLUGIN).channel == exchange
    unverified = Identity.objects.create(tenant=acme, user=rep_user, email="u@acme.test", name="U")
    result = route(user=rep_user, identity=unverified, source=Source.WEB)
    assert result.channel is None and "not verified" in result.reason


def test_the_routing_table_is_shown(rep_client: Client, rep_user: User) -> None:
    # Under Identities, the section of Delivery channels it belongs to.
    page = rep_client.get(reverse("channels:overview") + "?section=identities").content.decode()
    assert "Which channel sends what" in page
    assert "Connect Gmail to send from the Gmail plugin." in page
    assert "Web app as rep@acme.test" in page


@pytest.mark.django_db(transaction=True)
def test_a_refused_identity_keeps_what_was_typed_and_says_why_beside_the_field(
    rep_client: Client, rep_user: User
) -> None:
    before = Identity.objects.count()
    response = rep_client.post(
        reverse("channels:identity_add"), {"email": "rick@@sales", "name": "Rick at Sales"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    form = page[page.index('<form class="card" id="add-identity"') :]
    form = form[: form.index("</form>")]
    assert "Enter a valid email address." in form  # beside the field, not a banner
    assert 'value="rick@@sales"' in form and 'value="Rick at Sales"' in form
    assert Identity.objects.count() == before
    assert not mail.outbox
    # The address the person already has is refused the same way.
    own = Identity.objects.filter(user=rep_user).first()
    assert own is not None
    again = rep_client.post(reverse("channels:identity_add"), {"email": own.email, "name": "Me"})
    assert again.status_code == 400 and "You already have this address." in again.content.decode()
