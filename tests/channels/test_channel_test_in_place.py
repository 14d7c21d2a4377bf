"""Test connection answers htmx with the card's new state: badge, notice and last test."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels.kinds import SmtpConfig
from channels.models import Channel
from channels.services import channel_save_smtp
from msc_admin.devtls import Certificates
from tests.mailservers import free_port, smtp_server

pytestmark = pytest.mark.django_db(transaction=True)


def _team_channel(tenant: Tenant, actor: User, *, port: int, password: str = "right") -> Channel:
    config = SmtpConfig(host="localhost", port=port, username="alice", sending_domain="acme.test")
    return channel_save_smtp(
        tenant=tenant,
        actor=actor,
        owner=None,
        config=config,
        password=password,
        use_for_all_members=True,
    )


def _fragment(html: str, element_id: str, *, oob: bool) -> str:
    """The element with this id (its opening tag says whether it is an out-of-band swap)."""
    found = re.search(rf'<(\w+) id="{element_id}"([^>]*)>(.*?)</\1>', html, re.S)
    assert found, f"#{element_id} not in the page"
    assert ('hx-swap-oob="true"' in found.group(2)) == oob
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(3)).split())


def _test(client: Client, channel: Channel) -> str:
    response = client.post(reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Trigger"] == "channel-tested"
    assert "<html" not in response.content.decode()
    return response.content.decode()


def test_a_failed_test_updates_the_badge_and_the_last_test_without_a_reload(
    fresh_admin_client: Client, acme: Tenant, admin_user: User
) -> None:
    channel = _team_channel(acme, admin_user, port=free_port())  # nothing listens there
    page = fresh_admin_client.get(reverse("channels:team")).content.decode()
    assert _fragment(page, f"last-test-{channel.pk}", oob=False) == "not tested yet"
    assert _fragment(page, f"channel-status-{channel.pk}", oob=False) == "active"

    answer = _test(fresh_admin_client, channel)
    channel.refresh_from_db()
    assert channel.last_test_ok is False and channel.last_test_at is not None
    assert channel.status == "active"  # not a credentials problem: still in service
    last = _fragment(answer, f"last-test-{channel.pk}", oob=True)
    assert last.startswith("failed") and last.endswith("(just now)")
    assert "refused" in last.lower()
    assert _fragment(answer, f"channel-status-{channel.pk}", oob=True) == "last test failed"
    assert _fragment(answer, f"channel-attention-{channel.pk}", oob=True) == ""


def test_a_rejected_password_then_a_passing_test_update_the_card_in_place(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port, password="wrong")
        answer = _test(fresh_admin_client, channel)
        channel.refresh_from_db()
        assert channel.status == "needs_attention"
        assert _fragment(answer, f"channel-status-{channel.pk}", oob=True) == "needs attention"
        notice = _fragment(answer, f"channel-attention-{channel.pk}", oob=True)
        assert "Authentication unsuccessful" in notice and "Re-authenticate and save" in notice

        channel.set_secret({"password": "right"})  # as if re-entered: the server accepts it
        channel.save(update_fields=["secret"])
        answer = _test(fresh_admin_client, channel)
    channel.refresh_from_db()
    assert channel.status == "active" and channel.last_test_ok is True
    assert _fragment(answer, f"channel-status-{channel.pk}", oob=True) == "active"
    assert _fragment(answer, f"channel-attention-{channel.pk}", oob=True) == ""
    assert _fragment(answer, f"last-test-{channel.pk}", oob=True).startswith("passed")


def test_a_test_email_is_the_channels_last_test_on_its_card_and_the_home_page(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port)
        response = fresh_admin_client.post(
            reverse("channels:test_email", args=[channel.pk]),
            {"to": "admin@acme.test"},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200 and response["HX-Trigger"] == "channel-tested"
        assert len(server.received.messages) == 1
    channel.refresh_from_db()
    assert channel.last_test_ok is True and channel.last_test_at is not None
    answer = response.content.decode()
    last = _fragment(answer, f"last-test-{channel.pk}", oob=True)
    assert last == "passed Test email accepted by the server for admin@acme.test. (just now)"
    home = fresh_admin_client.get(reverse("home")).content.decode()
    assert "last test just now: passed" in home and "never tested" not in home

    # A test email the server cannot take is a failed last test.
    fresh_admin_client.post(
        reverse("channels:test_email", args=[channel.pk]), {"to": "admin@acme.test"}
    )  # the server is gone: nothing listens on its port now
    channel.refresh_from_db()
    assert channel.last_test_ok is False
    page = fresh_admin_client.get(reverse("channels:team")).content.decode()
    assert _fragment(page, f"last-test-{channel.pk}", oob=False).startswith("failed")
