"""Re-classification by the current parser: ``manage.py reparse_bounces`` and an admin's
"Re-check", on PostgreSQL in autocommit, as production runs them.

The world holds bounces recorded by an "earlier parser" (rows with its verdicts and no evidence,
roll-ups built from those verdicts): one whose raw message the current parser reads as a full
mailbox (soft) though it was stored as "user unknown" (hard), one that is no longer a bounce at
all (an auto-reply that ended a campaign), one whose verdict stands, one not matched to any
message, and another tenant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import bounceparse
from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import (
    FeedKind,
    Notification,
)
from bounces import reclassify, services
from bounces.models import BounceEvent, BounceRecheck
from bounces.selectors import outcomes
from channels.models import Identity
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Template,
)
from tests.analytics.rollup_rows import rollup_rows
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.bounces.conftest import dsn_for, mark_sent
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)

AUTO_REPLY = (
    b"From: sam@prospect.test\nSubject: Out of office\nAuto-Submitted: auto-replied\n\nAway."
)
FULL = "552 5.2.2 <{rcpt}>: Mailbox full"


@dataclass
class World:
    acme: Tenant
    full: BounceEvent  # stored "userunknown, hard"; the parser reads "mailboxfull, soft"
    gone: BounceEvent  # stored "userunknown, hard"; its raw message is an auto-reply
    same: BounceEvent  # stored "userunknown, hard", and so it stays
    stray: BounceEvent  # not matched to a message; stored "userunknown", reads "mailboxfull"
    foreign: BounceEvent  # Globex's, like ``full``
    enrollment: Enrollment  # ended by ``gone``
    following: Message  # the next step of that campaign, failed when it ended


def _as_an_earlier_parser_left_it(*events: BounceEvent, raw: bytes | None = None) -> None:
    """The verdict an earlier parser stored: user unknown, hard, no evidence, no version."""
    changes: dict[str, object] = {
        "reason": "userunknown",
        "hard": True,
        "status": "5.1.1",
        "evidence": {},
        "parser_version": "",
    }
    if raw is not None:
        changes["raw"] = raw
    BounceEvent.objects.filter(pk__in=[e.pk for e in events]).update(**changes)
    for event in events:
        if event.message_id:
            Message.objects.filter(pk=event.message_id).update(
                status_detail="Hard bounce (userunknown): 550 5.1.1 User unknown"
            )


def _rebuild(*tenants: Tenant) -> None:
    rollups.rebuild([t.pk for t in tenants], outcomes=outcomes)


@pytest.fixture
def world(
    acme: Tenant, globex: Tenant, rep_user: User, rep_identity: Identity, outsider_user: User
) -> World:
    def bounce(message: Message | None, tenant: Tenant = acme, **kw: object) -> BounceEvent:
        (event,) = services.ingest(tenant=tenant, raw=dsn_for(message, **kw)).created  # type: ignore[arg-type]
        return event

    full_message = mark_sent(queue_message(acme, rep_user, rep_identity, to="full@prospect.test"))
    full = bounce(full_message, status="5.2.2", diagnostic=FULL, own_id="<d-full@mx>")

    template = Template.objects.create(tenant=acme, owner=rep_user, name="T", subject="s", body="b")
    campaign = Campaign.objects.create(tenant=acme, owner=rep_user, name="C", identity=rep_identity)
    step = CampaignStep.objects.create(campaign=campaign, template=template, position=1)
    contact = Contact.objects.create(tenant=acme, owner=rep_user, email="sam@prospect.test")
    enrollment = Enrollment.objects.create(tenant=acme, campaign=campaign, contact=contact)
    first = queue_message(acme, rep_user, rep_identity, to="sam@prospect.test")
    later = timezone.now() + timedelta(days=3)
    following = queue_message(acme, rep_user, rep_identity, to="sam@prospect.test", send_at=later)
    Message.objects.filter(pk__in=[first.pk, following.pk]).update(
        enrollment=enrollment, campaign_step=step
    )
    gone = bounce(mark_sent(first), own_id="<d-gone@mx>")

    same_message = mark_sent(queue_message(acme, rep_user, rep_identity, to="old@prospect.test"))
    same = bounce(same_message, own_id="<d-same@mx>")
    stray = bounce(None, status="5.2.2", diagnostic=FULL, own_id="<d-stray@mx>")
    foreign = bounce(None, tenant=globex, status="5.2.2", diagnostic=FULL, own_id="<d-gx@mx>")

    _as_an_earlier_parser_left_it(full, same, stray, foreign)
    _as_an_earlier_parser_left_it(gone, raw=AUTO_REPLY)
    Notification.objects.filter(link=f"/bounces/{full.pk}/").update(
        text="full@prospect.test bounced (userunknown, hard): Hello"
    )
    _rebuild(acme, globex)  # the figures as the earlier parser's verdicts made them
    enrollment.refresh_from_db()
    following.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ENDED
    assert following.status == MessageStatus.CANCELLED  # never sent: cancelled, not failed
    return World(acme, full, gone, same, stray, foreign, enrollment, following)


def _figures(tenant: Tenant) -> dict[str, set[tuple]]:
    """Every roll-up row of the tenant, without ids."""
    assert_team_rows_sum_the_senders(tenant)
    return rollup_rows(tenant)


def _state() -> list[tuple]:
    """Everything a re-classification may write."""
    return [
        *BounceEvent.objects.order_by("pk").values_list(
            "pk", "kind", "reason", "hard", "status", "evidence", "parser_version", "undone_at"
        ),
        *Message.objects.order_by("pk").values_list("pk", "status", "status_detail"),
        *Enrollment.objects.order_by("pk").values_list("pk", "status"),
        *Notification.objects.order_by("pk").values_list("pk", "text"),
        *BounceRecheck.objects.values_list("pk"),
        *(sorted(rows) for rows in _figures(Tenant.objects.get(slug="acme")).values()),
    ]


def _run(*args: str) -> str:
    out = StringIO()
    call_command("reparse_bounces", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_dry_run_prints_the_changes_and_writes_nothing(world: World) -> None:
    before = _state()
    printed = _run("--dry-run", "--tenant", "acme")
    assert "Re-reading 4 stored bounces with parser v2.0 (dry run: nothing is written)" in printed
    lines = [" ".join(line.split()) for line in printed.splitlines()]
    assert "userunknown → mailboxfull 2" in lines  # ``full`` and the unmatched ``stray``
    assert "userunknown → not a bounce 1" in lines
    assert "hard → soft 2" in lines and "hard → not a bounce 1" in lines
    assert "Read 4: 3 would change, 1 the same." in lines
    assert _state() == before


def test_a_run_applies_the_changes_and_everything_agrees_with_a_rebuild(world: World) -> None:
    printed = _run("--tenant", "acme", "--batch-size", "2")
    assert "Read 4: 3 changed, 1 the same." in [" ".join(ln.split()) for ln in printed.splitlines()]

    full = BounceEvent.objects.get(pk=world.full.pk)
    assert (full.reason, full.hard, full.status, full.parser_version) == (
        "mailboxfull",
        False,
        "5.2.2",
        bounceparse.PARSER_VERSION,
    )
    assert full.evidence == {"source": "dsn", "rule": "status", "detail": "5.2.2", "format": ""}
    assert full.undone_at is None
    message = full.message
    assert message is not None and message.status == MessageStatus.BOUNCED
    assert message.detail_text.startswith("Soft bounce (Mailbox full): 552 5.2.2")
    entry = Notification.objects.get(kind=FeedKind.BOUNCED, link=f"/bounces/{full.pk}/")
    assert entry.words == "full@prospect.test bounced (Mailbox full, soft): Hello"

    # No longer a bounce: undone as "not a bounce" is, but by the parser; the campaign goes on.
    gone = BounceEvent.objects.get(pk=world.gone.pk)
    assert gone.undone_at is not None and gone.undone_by is None and gone.undone_by_parser
    assert gone.kind == bounceparse.AUTO_REPLY and gone.parser_version == "2.0"
    assert gone.message is not None and gone.message.status == MessageStatus.SENT
    world.enrollment.refresh_from_db()
    world.following.refresh_from_db()
    assert world.enrollment.status == EnrollmentStatus.ACTIVE
    assert world.following.status == MessageStatus.SCHEDULED
    assert world.following.status_detail != CAMPAIGN_ENDED_BOUNCE

    same = BounceEvent.objects.get(pk=world.same.pk)
    assert (same.reason, same.hard, same.parser_version) == ("userunknown", True, "2.0")
    assert same.evidence["rule"] == "status"
    stray = BounceEvent.objects.get(pk=world.stray.pk)
    assert (stray.reason, stray.hard, stray.message_id) == ("mailboxfull", False, None)
    foreign = BounceEvent.objects.get(pk=world.foreign.pk)
    assert (foreign.reason, foreign.parser_version) == ("userunknown", "")  # another tenant

    rechecks = BounceRecheck.objects.filter(tenant=world.acme)
    assert {(r.event_id, r.old_reason, r.new_reason, r.new_bounce, r.by_id) for r in rechecks} == {
        (world.full.pk, "userunknown", "mailboxfull", True, None),
        (world.gone.pk, "userunknown", "", False, None),
        (world.stray.pk, "userunknown", "mailboxfull", True, None),
    }

    # The roll-ups the run kept in step are what a rebuild from the raw tables gives.
    kept = _figures(world.acme)
    assert ("mailboxfull", False) in {(r[-3], r[-2]) for r in kept["ReasonRollup"]}
    _rebuild(world.acme)
    assert _figures(world.acme) == kept

    # A second run finds nothing to read, and reading everything again changes nothing.
    after = _state()
    assert "Read 0: 0 changed, 0 the same." in _run("--tenant", "acme")
    assert "Read 4: 0 changed, 4 the same." in _run("--tenant", "acme", "--all")
    assert _state() == after


def test_a_run_stopped_part_way_goes_on_where_it_stopped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = reclassify.reclassify
    calls = []

    def dies_on_the_second_batch(**kw: object) -> list[reclassify.Change]:
        calls.append(kw)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(reclassify, "reclassify", dies_on_the_second_batch)
    with pytest.raises(CommandError, match=f"--after-id {world.full.pk}"):
        _run("--tenant", "acme", "--batch-size", "1")
    # The first batch is in, whole: its roll-ups already agree with the raw tables.
    assert BounceEvent.objects.get(pk=world.full.pk).reason == "mailboxfull"
    assert BounceEvent.objects.get(pk=world.gone.pk).parser_version == ""
    kept = _figures(world.acme)
    _rebuild(world.acme)
    assert _figures(world.acme) == kept

    monkeypatch.setattr(reclassify, "reclassify", real)
    assert "Read 3: 2 changed, 1 the same." in _run("--tenant", "acme")
    assert BounceEvent.objects.get(pk=world.gone.pk).undone_by_parser
    kept = _figures(world.acme)
    _rebuild(world.acme)
    assert _figures(world.acme) == kept


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_on_a_terminal_and_none_in_a_log(world: World) -> None:
    terminal, log = _Terminal(), StringIO()
    call_command("reparse_bounces", "--dry-run", "--batch-size", "2", stdout=log, stderr=terminal)
    drawn = terminal.getvalue()
    assert "\r[############------------------] 2/5 bounces, " in drawn  # redrawn in place
    assert "\r[##############################] 5/5 bounces, " in drawn and drawn.endswith(" s\n")
    quiet = StringIO()
    call_command("reparse_bounces", "--dry-run", stdout=StringIO(), stderr=quiet)
    assert quiet.getvalue() == ""


def test_since_and_after_id_narrow_a_run(world: World) -> None:
    assert "Read 0:" in _run("--dry-run", "--since", "2999-01-01")
    printed = _run("--dry-run", "--after-id", str(world.same.pk))
    assert "Re-reading 2 stored bounces" in printed  # ``stray`` and Globex's
    with pytest.raises(CommandError, match="not a date"):
        _run("--since", "last tuesday")
    with pytest.raises(CommandError, match="No tenant with the slug nope"):
        _run("--tenant", "nope")


def test_a_person_s_not_a_bounce_is_never_overturned(world: World, admin_user: User) -> None:
    services.undo(event=world.full, by=admin_user)
    _run("--tenant", "acme")
    full = BounceEvent.objects.get(pk=world.full.pk)
    assert full.reason == "mailboxfull" and full.parser_version == "2.0"  # the verdict moves
    assert full.undone_by == admin_user and not full.undone_by_parser  # the decision stays
    assert full.message is not None and full.message.status == MessageStatus.SENT
    kept = _figures(world.acme)
    _rebuild(world.acme)
    assert _figures(world.acme) == kept


def test_a_bounce_a_later_parser_reads_again_counts_again(world: World) -> None:
    _run("--tenant", "acme")
    gone = BounceEvent.objects.get(pk=world.gone.pk)
    assert gone.undone_by_parser
    # A later parser: the stored message reads as the bounce it first was.
    BounceEvent.objects.filter(pk=gone.pk).update(
        raw=dsn_for(gone.message, own_id="<d-gone@mx>"), parser_version="1.9"
    )
    assert "Read 1: 1 changed, 0 the same." in _run("--tenant", "acme")
    gone.refresh_from_db()
    assert gone.undone_at is None and not gone.undone_by_parser and gone.kind == "bounce"
    assert gone.message is not None and gone.message.status == MessageStatus.BOUNCED
    world.enrollment.refresh_from_db()
    assert world.enrollment.status == EnrollmentStatus.ENDED
    kept = _figures(world.acme)
    _rebuild(world.acme)
    assert _figures(world.acme) == kept


def test_a_cut_raw_message_or_none_keeps_its_verdict(world: World) -> None:
    BounceEvent.objects.filter(pk=world.gone.pk).update(raw_truncated=True)
    BounceEvent.objects.filter(pk=world.same.pk).update(raw=b"")
    printed = _run("--tenant", "acme")
    assert "2 kept as they were (raw message missing or cut short)" in printed
    gone = BounceEvent.objects.get(pk=world.gone.pk)
    assert gone.undone_at is None and gone.parser_version == ""
    assert BounceEvent.objects.get(pk=world.same.pk).parser_version == ""


# --- the bounce page: how the verdict was reached, and "Re-check" -----------------------------


def test_the_page_says_how_a_verdict_was_reached_and_by_which_parser(
    world: World, admin_client: Client
) -> None:
    url = reverse("bounces:detail", args=[world.full.pk])
    old = admin_client.get(url).content.decode()
    assert "an earlier parser" in old and "Re-check with the current parser" in old
    _run("--tenant", "acme")
    page = admin_client.get(url).content.decode()
    assert "Soft: the status 5.2.2 means &quot;mailbox full&quot; in the delivery report." in page
    assert "parser v2.0" in page and "an operator (reparse_bounces)" in page
    gone = admin_client.get(reverse("bounces:detail", args=[world.gone.pk])).content.decode()
    assert "reads this message as an auto-reply, not as a bounce" in gone
    assert "Decided by parser v2.0" in gone


def test_an_admin_re_checks_one_bounce_plain_and_with_htmx(
    world: World, admin_client: Client, admin_user: User, rep_client: Client
) -> None:
    url = reverse("bounces:recheck", args=[world.full.pk])
    assert rep_client.post(url).status_code == 403
    assert BounceEvent.objects.get(pk=world.full.pk).parser_version == ""

    answer = admin_client.post(url, follow=True)
    page = answer.content.decode()
    assert answer.redirect_chain == [(reverse("bounces:detail", args=[world.full.pk]), 302)]
    assert "Re-checked with parser v2.0: now “Mailbox full” (soft)" in page
    assert "was “Mailbox does not exist” (hard)" in page
    full = BounceEvent.objects.get(pk=world.full.pk)
    assert (full.reason, full.hard, full.parser_version) == ("mailboxfull", False, "2.0")
    assert BounceRecheck.objects.get(event=full).by == admin_user
    kept = _figures(world.acme)
    _rebuild(world.acme)
    assert _figures(world.acme) == kept

    fragment = admin_client.post(
        reverse("bounces:recheck", args=[world.gone.pk]), HTTP_HX_REQUEST="true"
    )
    assert fragment.status_code == 200 and fragment["HX-Trigger"] == "bounce-rechecked"
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="verdict">') and "<html" not in text
    assert "this is an auto-reply, not a bounce for this recipient" in text
    gone = BounceEvent.objects.get(pk=world.gone.pk)
    assert gone.undone_by_parser and gone.message is not None
    assert gone.message.status == MessageStatus.SENT

    again = admin_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "the verdict is the same (“Mailbox full”, soft)" in again
    assert BounceRecheck.objects.filter(event=full).count() == 1


def test_a_webhook_bounce_is_read_again_from_the_esp_event_it_stored(
    world: World, acme: Tenant
) -> None:
    import json

    from bounces import webhooks
    from bounces.models import BounceSource

    payload = {
        "email": "esp@prospect.test",
        "event": "bounce",
        "sg_event_id": "sg-1",
        "reason": "552 5.2.2 Mailbox full",
        "status": "5.2.2",
        "type": "bounce",
        "timestamp": 1795000000,
    }
    raw = json.dumps(payload, sort_keys=True).encode()
    result = webhooks.reparse("esp:sendgrid:sg-1", raw)
    assert result is not None and result.recipients[0].reason == "mailboxfull"
    (event,) = services.ingest_many(
        tenant=acme,
        items=[services.Incoming(raw, result=result, identity="esp:sendgrid:sg-1")],
        source=BounceSource.WEBHOOK,
    )[0].created
    _as_an_earlier_parser_left_it(event)
    assert "userunknown → mailboxfull" in _run("--dry-run", "--after-id", str(world.foreign.pk))
    assert webhooks.reparse("esp:sendgrid:sg-1", b"not json") is None
