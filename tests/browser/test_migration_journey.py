"""Staff move a legacy tenant off MSC servers in a real browser; the rep then sees the mail
that waits, connects a channel and sends it, and nothing ever goes through MSC again."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.models import Role
from channels import services as channel_services
from channels.models import MscServer
from msc_admin.devtls import make_certificates
from sending.models import Hold, Message, MessageStatus
from tests.browser.conftest import step
from tests.conftest import add_totp, totp_code
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory
from tests.mailservers import smtp_server
from tests.sending.conftest import RELAY_PASSWORD, RELAY_USER, queue_message, relay_config
from tests.waiting import wait_for

pytestmark = pytest.mark.browser


def _sign_in(page, live_url: str, email: str, secret: str | None = None) -> None:
    page.goto(f"{live_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    if secret:
        code = totp_code(secret)
        page.fill("input[name=code]", code)
        page.click("form button[type=submit]")


def test_staff_move_a_tenant_off_legacy_and_the_rep_sends_the_waiting_mail(
    open_page, live_url: str, settings, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path)
    settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)
    globex = TenantFactory(name="Globex", slug="globex", legacy_toutapp=True)
    rep = MembershipFactory(tenant=globex, role=Role.REP, user__email="rep@globex.test").user
    staff = UserFactory(email="staff@msc.test", is_staff=True, is_superuser=True)
    secret = add_totp(staff)
    channel_services.channel_select_legacy(tenant=globex, actor=rep, owner=rep)
    identity = channel_services.identity_ensure_default(user=rep, tenant=globex)
    waiting = [queue_message(globex, rep, identity, to=f"p{n}@prospect.test") for n in range(2)]

    with (
        smtp_server(mode="starttls", cert=certs.trusted, users={"pool": "pool-secret"}) as pool,
        smtp_server(mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}) as own,
    ):
        server = MscServer.objects.create(
            name="msc-1", host="localhost", port=pool.port, username="pool"
        )
        server.set_password("pool-secret")
        server.save()

        staff_page = open_page(label="staff")
        staff_page.on("dialog", lambda dialog: dialog.accept())  # the confirmation
        _sign_in(staff_page, live_url, "staff@msc.test", secret)
        staff_page.wait_for_url(f"{live_url}/staff/")
        step(staff_page, "staff console")
        staff_page.click("a:has-text('Globex')")
        step(staff_page, "globex before the move")
        main = staff_page.inner_text("main")
        assert "2 queued or scheduled messages on MSC wait" in main
        assert "1 person is told by email and in the live feed" in main
        staff_page.click("button:has-text('Move Globex off legacy')")
        staff_page.wait_for_selector("text=moved off legacy ToutApp")
        staff_page.wait_for_selector("text=1 of 1, done")
        step(staff_page, "moved and told")
        assert "modern" in staff_page.inner_text("main")

        rep_page = open_page({"width": 390, "height": 844}, "rep")
        _sign_in(rep_page, live_url, "rep@globex.test")
        rep_page.goto(f"{live_url}/analytics/live/")
        feed_text = rep_page.inner_text("main")
        assert "Your team no longer sends through the shared legacy servers" in feed_text
        assert "MSC" not in feed_text  # Globex is a modern tenant now
        rep_page.goto(f"{live_url}/outbox/")
        step(rep_page, "outbox with waiting mail")
        main = rep_page.inner_text("main")
        assert "2 messages wait for a channel" in main
        # No channel yet, and no OAuth client on this server: the one way on offer is said,
        # and there is no button that could send them nowhere.
        assert "No channel yet: ask your admin for a team SMTP channel" in main
        assert rep_page.locator("#held-for-channel button").count() == 0

        channel_services.channel_save_smtp(
            tenant=globex,
            actor=rep,
            owner=rep,
            config=relay_config(own, domain="globex.test"),
            password=RELAY_PASSWORD,
            use_for_all_members=False,
        )
        rep_page.goto(f"{live_url}/outbox/")
        rep_page.click("button:has-text('Send them through Custom SMTP')")
        rep_page.wait_for_selector("text=2 waiting messages will go out now.")
        step(rep_page, "waiting mail sent")
        # Both rows in their final state: each was handed to a server before it was marked
        # sent, and nothing sends a sent message again, so the servers can be counted now.
        sent = Message.objects.filter(pk__in=[m.pk for m in waiting], status=MessageStatus.SENT)
        wait_for(
            lambda: sent.count() == 2,
            15,
            "both waiting messages to be sent",
        )
        assert sorted(m["to"][0] for m in own.received.messages) == [
            "p0@prospect.test",
            "p1@prospect.test",
        ]
        assert pool.received.messages == []  # never through MSC
    assert not Message.objects.filter(pk__in=[m.pk for m in waiting], hold=Hold.CHANNEL).exists()
