"""A person's name: asked for when they join, changed in their settings; their mail is signed
with their identity's From name, which they change on Delivery channels."""

from __future__ import annotations

import html
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels.models import ChannelAuditEvent, Identity

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served


def _preview(client: Client, identity: Identity) -> str:
    response = client.post(
        reverse("sending:compose"),
        {
            "identity": identity.pk,
            "to": "pat@prospect.test",
            "subject": "Hello",
            "body": "Thanks.\n\nBest, {{sender_name}}",
            "action": "preview",
        },
    )
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_a_new_person_gives_their_name_when_joining_and_their_mail_is_signed_with_it(
    admin_client: Client, acme: Tenant
) -> None:
    admin_client.post(reverse("accounts:users"), {"email": "new.rep@acme.test", "role": "rep"})
    (invitation,) = mail.outbox
    link = re.search(r"http://127\.0\.0\.1:8000(/invite/[^\s]+/)", invitation.body).group(1)
    invitee = Client()
    page = invitee.get(link).content.decode()
    assert 'name="first_name"' in page and 'name="last_name"' in page
    passwords = {"password1": "horse-battery-7-staple", "password2": "horse-battery-7-staple"}

    nameless = invitee.post(link, {**passwords, "first_name": "  "})
    assert nameless.status_code == 400 and "This field is required." in nameless.content.decode()
    assert not User.objects.get(email="new.rep@acme.test").has_usable_password()

    response = invitee.post(link, {**passwords, "first_name": "Nia", "last_name": "Newman"})
    assert response.status_code == 302
    user = User.objects.get(email="new.rep@acme.test")
    assert (user.first_name, user.last_name) == ("Nia", "Newman")
    identity = Identity.objects.get(user=user, is_default=True)
    assert str(identity) == "Nia Newman <new.rep@acme.test>"
    assert "Best, Nia Newman" in _preview(invitee, identity)


def test_a_person_changes_their_name_and_their_from_name(
    rep_client: Client, rep_user: User
) -> None:
    identity = Identity.objects.get(user=rep_user, is_default=True)
    assert identity.name == "rep"  # made before they had a name: their address's local part
    settings_page = rep_client.get(reverse("accounts:settings")).content.decode()
    assert f'action="{reverse("accounts:name")}"' in settings_page

    bad = rep_client.post(reverse("accounts:name"), {"first_name": "Rick <x>", "last_name": ""})
    assert bad.status_code == 400 and "cannot contain quotes" in bad.content.decode()
    rep_user.refresh_from_db()
    assert rep_user.first_name == ""

    response = rep_client.post(
        reverse("accounts:name"), {"first_name": "Rick", "last_name": "Rep"}, follow=True
    )
    assert "Your name is now Rick Rep." in response.content.decode()
    rep_user.refresh_from_db()
    identity.refresh_from_db()
    assert (rep_user.get_full_name(), identity.name) == ("Rick Rep", "Rick Rep")
    assert "Best, Rick Rep" in _preview(rep_client, identity)

    # The From name is the identity's, changed on Delivery channels (and audited).
    overview = rep_client.get(reverse("channels:overview") + "?section=identities").content.decode()
    url = reverse("channels:identity_name", args=[identity.pk])
    assert f'action="{url}"' in overview
    refused = rep_client.post(url, {"name": 'Rick "the rep"'}, follow=True)
    assert "cannot contain line breaks, quotes or &lt; &gt;" in refused.content.decode()
    rep_client.post(url, {"name": "Rick R. · Acme"})
    identity.refresh_from_db()
    assert identity.name == "Rick R. · Acme"
    event = ChannelAuditEvent.objects.get(
        action="identity name set", changes__from_name__to=("Rick R. · Acme")
    )
    assert event.changes["from_name"]["from"] == "Rick Rep" and event.actor == rep_user
    assert "Best, Rick R. · Acme" in _preview(rep_client, identity)
    # A name the person chose for the identity stays when their own name changes again.
    rep_client.post(reverse("accounts:name"), {"first_name": "Richard", "last_name": "Rep"})
    identity.refresh_from_db()
    assert identity.name == "Rick R. · Acme"


def test_named_people_are_shown_by_name_with_their_address_at_hand(
    admin_client: Client, admin_user: User, rep_client: Client, rep_user: User
) -> None:
    """Once someone has a name, colleagues see it: the page header, the audit's "Who", the
    invitation they send. Their address stays in a tooltip (and in the email's brackets)."""
    admin_user.first_name, admin_user.last_name = "Ada", "Admin"
    admin_user.save()
    header = admin_client.get("/").content.decode()
    assert '<span class="who" title="admin@acme.test">Ada Admin' in header

    rep_client.post(reverse("accounts:name"), {"first_name": "Rick", "last_name": "Rep"})
    identity = Identity.objects.get(user=rep_user, is_default=True)
    rep_client.post(reverse("channels:identity_name", args=[identity.pk]), {"name": "Rick R."})
    audit = admin_client.get(reverse("channels:audit")).content.decode()
    assert '<span title="rep@acme.test">Rick Rep</span>' in audit

    admin_client.post(reverse("accounts:users"), {"email": "new.rep@acme.test", "role": "rep"})
    (invitation,) = mail.outbox
    assert "Ada Admin (admin@acme.test) invited you to join" in invitation.body
    # Someone without a name is their address.
    rep_user.first_name = rep_user.last_name = ""
    rep_user.save()
    unnamed = rep_client.get("/").content.decode()
    assert '<span class="who" title="rep@acme.test">rep@acme.test' in unnamed


def test_a_name_pasted_as_mime_encoded_words_is_stored_as_the_words(
    rep_client: Client, rep_user: User
) -> None:
    """A name copied from a mail client's header (``=?utf-8?q?Jos=C3=A9?=``) is the name it
    stands for, as contacts' are; stored raw, the app showed the code and mail went out as
    "José" (the header carried it as it was)."""
    rep_client.post(
        reverse("accounts:name"), {"first_name": "=?utf-8?q?Jos=C3=A9?=", "last_name": "Rep"}
    )
    rep_user.refresh_from_db()
    assert rep_user.get_full_name() == "José Rep"
