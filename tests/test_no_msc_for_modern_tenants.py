"""A modern tenant's rep and admin never read "MSC": every page they can reach, with something
on it (channels of every kind, queued, held, failed, sent and bounced mail, campaigns, the
feed, the audit log), for a tenant that always was modern and for one moved off legacy ToutApp
(modern from then on), whose history with MSC servers is all still there."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import Role, Tenant, User
from analytics import feed, rollups
from analytics.models import FeedKind
from bounces import services as bounces
from bounces.selectors import outcomes
from channels import services as channel_services
from channels.models import Channel
from sending.models import Hold, Message, MessageStatus
from staff import services as staff_services
from tests.bounces.conftest import dsn_for, mark_sent
from tests.factories import MembershipFactory
from tests.security.conftest import World, fresh_client
from tests.security.conftest import world as world  # the fixture
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = pytest.mark.django_db

SKIP = ("/accounts/logout/", "/django-admin/", "/static/", "/health/", "/staff/")
# The product's own mail header, as the receiving servers return it inside a raw bounce (and
# as the verdict names it): a header name, not a word addressed to the user.
PRODUCT_HEADER = "X-MSC-Message"


def _msc_words(html: str) -> list[str]:
    html = html.replace(PRODUCT_HEADER, "")
    # A word, not three letters inside a random CSRF token (which failed this test once).
    found = [html[max(m.start() - 60, 0) : m.end() + 60] for m in re.finditer(r"\bMSC\b", html)]
    found += [m.group(0) for m in re.finditer("msc server", html, re.IGNORECASE)]
    return found


def _walk(client: Client, starts: list[str], limit: int = 400) -> dict[str, list[str]]:
    """Every page reachable by a link from ``starts`` (GET), and the MSC words on each."""
    seen: dict[str, list[str]] = {}
    queue = list(starts)
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url, follow=True)
        assert response.status_code < 400, (url, response.status_code)
        kind = response.get("Content-Type", "")
        body = (
            b"".join(response.streaming_content)  # type: ignore[arg-type]
            if response.streaming
            else response.content
        )
        text = body.decode() if kind.startswith("text/") else ""
        seen[url] = _msc_words(text)
        if "text/html" not in kind:
            continue
        for href in re.findall(r'href="([^"#]+)"', text):
            target = urlparse(urljoin(url, href.replace("&amp;", "&")))
            if target.netloc or target.path.startswith(SKIP):
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


# Pages that must be among those walked (so the walk really went everywhere that matters).
MUST = {
    "rep": ["/", "/channels/", "/outbox/", "/outbox/compose/", "/bounces/", "/analytics/"],
    "admin": ["/channels/team/", "/channels/team/audit/", "/settings/users/", "/analytics/live/"],
}


def _assert_no_msc(client: Client, who: str) -> None:
    starts = [*MUST["rep"], *(MUST["admin"] if who == "admin" else [])]
    starts += [f"/outbox/{folder}/" for folder in ("queued", "sent", "failed", "bounced")]
    seen = _walk(client, starts)
    assert set(starts) <= set(seen)
    offending = {url: words for url, words in seen.items() if words}
    assert not offending, offending
    assert len(seen) > 25, sorted(seen)


@pytest.fixture
def moved(globex: Tenant, outsider_user: User, staff_user: User) -> dict:
    """Globex used MSC servers (sent, bounced, failed and queued mail through them, feed
    entries and audit events naming them), then staff moved it off legacy ToutApp."""
    rep = MembershipFactory(tenant=globex, role=Role.REP, user__email="rep@globex.test").user
    # The admin stopped using MSC servers once, then chose them again: audit rows name them.
    first = channel_services.channel_select_legacy(
        tenant=globex, actor=outsider_user, owner=outsider_user
    )
    channel_services.channel_delete(channel=first, actor=outsider_user)
    for user in (outsider_user, rep):
        msc = channel_services.channel_select_legacy(tenant=globex, actor=user, owner=user)
        identity = channel_services.identity_ensure_default(user=user, tenant=globex)
        channel_services.identity_set_channel(identity=identity, channel=msc, actor=user)
        sent = mark_sent(queue_message(globex, user, identity, to=f"gone-{user.pk}@x.test"))
        bounces.ingest(tenant=globex, raw=dsn_for(sent))
        mark_sent(queue_message(globex, user, identity, to=f"fine-{user.pk}@x.test"))
        failed = queue_message(globex, user, identity, to=f"failed-{user.pk}@x.test")
        Message.objects.filter(pk=failed.pk).update(
            status=MessageStatus.FAILED,
            failed_at=timezone.now(),
            status_detail="No MSC server is available right now.",
        )
        queue_message(globex, user, identity, to=f"waiting-{user.pk}@x.test")
        feed.notify_channel(msc, f"{msc.label} paused: 5 of 20 recent messages bounced.", "/")
    rollups.rebuild([globex.pk], outcomes=outcomes)
    with TestCase.captureOnCommitCallbacks(execute=True):  # users are told (feed and email)
        staff_services.tenant_unflag_legacy(actor=staff_user, tenant=globex)
    return {"rep": rep, "admin": outsider_user}


@pytest.mark.parametrize("who", ["rep", "admin"])
def test_a_tenant_moved_off_legacy_never_reads_msc_again(moved: dict, who: str) -> None:
    user = moved[who]
    assert Message.objects.filter(sender=user, hold=Hold.CHANNEL).count() == 1
    _assert_no_msc(fresh_client(user), who)
    told = [m for m in mail.outbox if m.to == [user.email]]
    assert told and all(not _msc_words(m.subject + m.body) for m in told)


@pytest.mark.parametrize("who", ["rep", "admin"])
def test_a_modern_tenant_never_reads_msc(world: World, who: str) -> None:
    # Every kind of personal channel besides the world's team SMTP and Gmail.
    for kind in ("exchange_online", "exchange_onprem", "custom_smtp"):
        Channel.objects.create(tenant=world.tenant, owner=world.rep, kind=kind)
    gmail_channel(world.tenant, world.admin)
    failed = queue_message(world.tenant, world.rep, world.identity, to="failed@prospect.test")
    Message.objects.filter(pk=failed.pk).update(
        status=MessageStatus.FAILED, failed_at=timezone.now(), status_detail="Mailbox full."
    )
    feed.notify(world.tenant.pk, [(world.rep.pk, FeedKind.CHANNEL, "Gmail needs attention", "/")])
    rollups.rebuild([world.tenant.pk], outcomes=outcomes)
    user = world.admin if who == "admin" else world.rep
    _assert_no_msc(fresh_client(user), who)
