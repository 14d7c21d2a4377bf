"""Channel status is written by ``channels`` alone, through atomic services that other apps call
(bounce-spike protection pauses and resumes, the pipeline backs off and marks "needs
attention", the staff's move off legacy retires): each change and its audit row together."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services
from channels.kinds import SmtpConfig
from channels.models import Channel, ChannelAuditEvent, ChannelStatus, Identity

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit: atomic or not shows


@pytest.fixture
def channel(acme: Tenant, admin_user: User) -> Channel:
    config = SmtpConfig(host="localhost", port=2525, username="u", sending_domain="acme.test")
    return services.channel_save_smtp(
        tenant=acme, actor=admin_user, owner=None, config=config, password="p"
    )


def _actions(channel: Channel) -> list[str]:
    events = ChannelAuditEvent.objects.filter(channel=channel).order_by("pk")
    return list(events.values_list("action", flat=True))


def test_pause_and_resume_are_audited_with_their_reason(channel: Channel, admin_user: User) -> None:
    assert services.channel_pause(
        channel=channel, message="Paused: too many bounces.", why="bounce spike", changes={"n": 1}
    )
    channel.refresh_from_db()
    assert (channel.status, channel.status_message) == (
        ChannelStatus.PAUSED,
        "Paused: too many bounces.",
    )
    # Only an active channel is paused: a second pause changes and audits nothing.
    assert not services.channel_pause(channel=channel, message="x", why="again", changes={})
    assert services.channel_resume(
        channel=channel, actor=admin_user, why="bounce spike", changes={"bounces_undone": 0}
    )
    channel.refresh_from_db()
    assert (channel.status, channel.status_message) == (ChannelStatus.ACTIVE, "")
    assert _actions(channel) == ["created", "paused (bounce spike)", "resumed after bounce spike"]
    resumed = ChannelAuditEvent.objects.get(action="resumed after bounce spike")
    assert resumed.actor == admin_user and resumed.changes == {"bounces_undone": 0}


def test_a_change_and_its_audit_are_one_transaction(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: object) -> None:
        raise RuntimeError("the audit row could not be written")

    monkeypatch.setattr(services, "audit", boom)
    with pytest.raises(RuntimeError):
        services.channel_pause(channel=channel, message="Paused.", why="bounce spike", changes={})
    with pytest.raises(RuntimeError):
        services.channel_mark_needs_attention(channel=channel, message="535 refused")
    channel.refresh_from_db()
    assert (channel.status, channel.status_message) == (ChannelStatus.ACTIVE, "")


def test_back_off_and_its_end(channel: Channel) -> None:
    until = timezone.now() + timedelta(minutes=2)
    services.channel_back_off(channel=channel, until=until, level=2, reason="421 slow down " * 40)
    channel.refresh_from_db()
    assert (channel.backoff_until, channel.backoff_level) == (until, 2)
    assert channel.backoff_text.startswith("421 slow down") and len(channel.backoff_reason) == 300
    services.channel_back_off_end(channel=channel)
    channel.refresh_from_db()
    assert (channel.backoff_level, channel.backoff_reason) == (0, "")
    assert _actions(channel) == ["created"]  # the provider's doing: not audited


def test_retired_channels_are_disabled_and_no_identity_sends_through_them(
    channel: Channel, acme: Tenant, rep_user: User
) -> None:
    identity = Identity.objects.create(
        tenant=acme, user=rep_user, email="rep@acme.test", name="Rep", channel=channel
    )
    assert services.channels_retire(channel_ids=[channel.pk], message="Retired.") == 1
    channel.refresh_from_db()
    identity.refresh_from_db()
    assert (channel.status, channel.status_text) == (ChannelStatus.DISABLED, "Retired.")
    assert identity.channel is None
