"""The send of one message, at most once, and the periodic work around it.

``send_message`` claims a due message with a conditional UPDATE (queued → sending): of two
workers given the same id, one wins and the other does nothing. Just before the message content
goes to the server, ``handed_over_at`` is committed. A worker that dies after that point leaves a
message that ``reconcile_stuck`` flags as *uncertain* (never resent automatically); a worker that
dies before it leaves one that is safely queued again.

Every wait is a ``next_attempt_at`` in the database: a throttle window, a provider back-off, a
retry. ``dispatch_due`` (every few seconds, from beat) hands due messages to workers. Only short
waits are also scheduled in the broker, always well inside its visibility timeout.

Push-back never drops mail. A provider's channel-level reply (``SendFailure.channel_level``:
a rate or a quota, see ``channels.transports``) holds the whole channel (``backoff_until``) and
moves every queued message of it to the same time, so they keep their order and none of them
spends a try: after a rate reply for ``Retry-After`` or an exponential back-off, after a quota
reply until the provider's window frees (the oldest send of its rolling 24 hours turns 24 hours
old) or, when we sent nothing in it, a conservative wait that doubles up to a day.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_noop, ngettext_lazy

from accounts.models import User
from analytics import feed, rollups
from analytics.models import FeedKind
from channels import services as channel_services
from channels.models import Channel, ChannelStatus, TeamSendingSettings
from channels.transports import AUTH, PERMANENT, QUOTA, RETRY, UNCERTAIN, SendFailure, sessions
from msc_admin import bulk, enqueue
from msc_admin.stored import Sentence, When, again, sentence, stored
from sending import domainlimits, mime, quota
from sending.models import (
    CAMPAIGN_ENDED,
    CAMPAIGN_ENDED_SUPPRESSED,
    HELD_FOR_CHANNEL,
    REFUSED,
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentStatus,
    Hold,
    Message,
    MessageStatus,
)
from sending.services import (
    campaign_advance,
    enrollment_end,
    imports_dispatch_due,
    messages_hold_for_channel,
    redispatch_before,
    send_stoppers,
)
from sending.services.messages import STOPPERS_COLUMNS, read_in_claim
from sending.services.suppressions import suppressed_text

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 60
RETRY_CAP_SECONDS = 3600
BACKOFF_BASE_SECONDS = 60
BACKOFF_CAP_SECONDS = 1800
# A quota reply when none of the channel's own sends is in its rolling window (the mailbox sent
# its day's mail elsewhere): wait an hour, doubling with each refusal in a row, at most a day.
QUOTA_BASE_SECONDS = 3600
QUOTA_CAP_SECONDS = 86_400
# A run waits this long at most for a throttle (Gmail's two a second) with its session open.
RUN_WAIT_SECONDS = 2.0
# The providers' sending quotas are daily: only a rolling window this long says when one frees.
QUOTA_WINDOW_SECONDS = 86_400


def lease() -> timedelta:
    """How long a claim may last before the message counts as abandoned by its worker."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def broker_wait_cap() -> float:
    """The longest wait ever handed to the broker (countdown); longer ones live in the DB."""
    return min(300.0, settings.CELERY_VISIBILITY_TIMEOUT / 4)


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries, not security


def retry_delay(attempt: int) -> float:
    return _jitter(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0)))


def _language_of(message: Message) -> str:
    """The language its sender reads the product in (``User.language``; blank: the product's)."""
    language = getattr(message, "sender_language", None)
    if language is None:
        language = User.objects.filter(pk=message.sender_id).values_list("language", flat=True)
        language = next(iter(language), "")
    return language or settings.LANGUAGE_CODE


class _Run:
    """A run of one channel's messages over one session (``send_run``): when it started, how
    many it has claimed, and the next message, when the statement that recorded the last one
    sent also claimed it (``_Attempt.sent``)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.count = 1
        self.looked = False  # the last outcome's statement looked for the next message …
        self.next: tuple[Message, str] | None = None  # … and claimed this one, if any

    def may_go_on(self) -> bool:
        elapsed = time.monotonic() - self.started
        # A message may take up to MSC_OUTBOUND_DEADLINE: never start one that could overrun
        # the task's soft time limit.
        room = settings.CELERY_TASK_SOFT_TIME_LIMIT - settings.MSC_OUTBOUND_DEADLINE - 10
        return (
            self.count < settings.MSC_SEND_SESSION_MESSAGES
            and elapsed < settings.MSC_SEND_SESSION_SECONDS
            and elapsed < room
        )


class _Attempt:
    """One claimed message: every outcome is written only while our claim still holds."""

    def __init__(self, message: Message, token: str, run: _Run | None = None) -> None:
        self.message = message
        self.token = token
        self.run = run

    def _mine(self) -> QuerySet[Message]:
        return Message.objects.filter(pk=self.message.pk, claim_token=self.token)

    def handed_over(self) -> None:
        """Its content is about to go: from now on it is never sent again automatically.
        Committed before a byte of it leaves (a plain statement: every send writes it)."""
        with bulk.statement_cursor() as cursor:
            cursor.execute(
                "UPDATE sending_message SET handed_over_at = %s WHERE id = %s AND claim_token = %s",
                [timezone.now(), self.message.pk, self.token],
            )

    def fail(self, detail: str, *, code: str = "", uncertain: bool = False) -> str:
        with transaction.atomic():
            updated = self._mine().update(
                status=MessageStatus.FAILED,
                hold=Hold.NONE,
                status_detail=stored(detail),
                smtp_code=code,
                uncertain=uncertain,
                failed_at=timezone.now(),
                next_attempt_at=None,
            )
            if updated:
                m = self.message
                text = sentence(
                    gettext_noop("Not sent to %(to)s: %(detail)s"), to=m.to_email, detail=detail
                )
                feed.notify(m.tenant_id, [(m.sender_id, FeedKind.FAILED, text, _folder("failed"))])
        return "failed"

    def cancel(self, reason: str) -> str:
        """The person's campaign ended before this email went: it is cancelled, not failed
        (nothing was tried, and no figure or feed counts it)."""
        self._mine().update(
            status=MessageStatus.CANCELLED,
            hold=Hold.NONE,
            status_detail=reason[:500],
            next_attempt_at=None,
            claim_token="",
        )
        return "cancelled"

    def suppressed(self, detail: str) -> str:
        """Its recipient is on the suppression list: never sent, and its person's campaign
        ends."""
        with transaction.atomic():
            updated = self._mine().update(
                status=MessageStatus.SUPPRESSED,
                hold=Hold.NONE,
                status_detail=stored(detail),
                attempts=F("attempts") - 1,
                next_attempt_at=None,
            )
            m = self.message
            if updated and m.enrollment_id is not None:
                enrollment_end(enrollment_id=m.enrollment_id, reason=CAMPAIGN_ENDED_SUPPRESSED)
            if updated:
                text = detail  # "Not sent: <address> is on your team's suppression list (…)."
                link = _folder("suppressed")
                feed.notify(m.tenant_id, [(m.sender_id, FeedKind.FAILED, text, link)])
        return "suppressed"

    def hold(self, hold: str, until: datetime | None, detail: str, *, tried: bool = False) -> str:
        """Back to the queue. ``tried`` says whether this claim reached the server; if not, it
        does not count as an attempt."""
        self._mine().filter(status=MessageStatus.SENDING).update(
            attempts=F("attempts") - (0 if tried else 1),
            status=MessageStatus.QUEUED,
            hold=hold,
            status_detail=stored(detail),
            next_attempt_at=until,
            dispatched_at=None,
            claim_token="",
        )
        if until is not None:
            wake_at(self.message.pk, until)
        return f"held:{hold}"

    def sent(self, reply: str) -> str:
        now = timezone.now()
        m = self.message
        detail, code = reply[:500], reply[:3] if reply[:3].isdigit() else ""
        text = sentence(
            gettext_noop("Sent to %(to)s: %(subject)s"), to=m.to_email, subject=m.subject
        )
        # At the time recorded as sent, which a bounce of this message never precedes.
        entry = (m.sender_id, FeedKind.SENT, text, _folder("sent"), now)
        if connection.vendor == "postgresql" and m.enrollment_id is None:
            # The outcome, its roll-ups and its feed entry in one statement, committed at once:
            # each is written only if the UPDATE under our claim marked the message sent.
            parts = [
                *rollups.count_sent_after(m, now, "done"),
                ("feed", *feed.notify_after(m.tenant_id, entry, "done")),
            ]
            writes = ", ".join(f"{name} AS ({part})" for name, part, _ in parts)
            params: list[Any] = [MessageStatus.SENT, Hold.NONE, detail, code, now, m.pk, self.token]
            params += [p for _, _, values in parts for p in values]
            run = self.run
            if run is None or m.channel_id is None or not run.may_go_on():
                with bulk.statement_cursor() as cursor:
                    cursor.execute(_SENT.format(done=_DONE, writes=writes), params)
                return "sent"
            # A run going on: the same statement claims the channel's next message, only if
            # this one's outcome was written (``_claim_after_sent``).
            claim = _claim_params({"channel": m.channel_id})
            sql, claim_params = _claim_after_sent(writes, claim)
            with bulk.statement_cursor() as cursor:
                cursor.execute(sql, params + claim_params)
                row = cursor.fetchone()
            run.looked = True
            if row[1] is not None:
                run.next = _claimed_rows(row[1:]), str(claim["token"])
            return "sent"
        with transaction.atomic():
            updated = self._mine().update(
                status=MessageStatus.SENT,
                hold=Hold.NONE,
                status_detail=detail,
                smtp_code=code,
                uncertain=False,
                sent_at=now,
                next_attempt_at=None,
            )
            if updated:
                rollups.count_sent(m, now)
                campaign_advance(message=m, sent_at=now)
                feed.notify_at(m.tenant_id, [entry])
        return "sent"


# The statement of a send's outcome (``_Attempt.sent``), the roll-ups' and the feed's writes
# added as ``writes``: names from our own modules, every value a parameter.
_DONE = """done AS (
    UPDATE sending_message SET status = %s, hold = %s, status_detail = %s, smtp_code = %s,
        uncertain = false, sent_at = %s, next_attempt_at = NULL
    WHERE id = %s AND claim_token = %s
    RETURNING id
)"""
_SENT = """
WITH {done}, {writes}
SELECT count(*) FROM done
"""


def _folder(name: str) -> str:
    return reverse("sending:outbox_folder", args=[name])


def wake_at(message_id: int, until: datetime) -> None:
    """Schedule a short wait in the broker too; longer waits are found by ``dispatch_due``."""
    from sending import tasks

    wait = (until - timezone.now()).total_seconds()
    if 0 < wait <= broker_wait_cap():
        enqueue.after_commit(tasks.send_message, message_id, countdown=wait + 0.05)


def claim(message_id: int) -> tuple[Message, str] | None:
    """Claim a due message by its id: it and our token, or None (another worker has it, or it
    is not due)."""
    return _claim("id = %(id)s AND next_attempt_at <= %(now)s", {"id": message_id})


def _esp_headers(channel: Channel, message_id: str) -> list[tuple[str, str]]:
    return channel.kind_spec.extra_headers(channel, mime.token_of(message_id))


# Outcomes after which a run goes on with the channel's next message: this one is settled, or
# held for a reason of its own (its receiving domain's cap or paused provider, its campaign
# paused) that says nothing about the channel. Any other hold (a throttle, a push-back, a
# retry) ends the run.
_RUN_GOES_ON = frozenset(
    {"sent", "failed", "suppressed", "cancelled"}
    | {f"held:{hold}" for hold in (Hold.DOMAIN_CAP, Hold.PROVIDER, Hold.PAUSED)}
)

_CLAIM = """
UPDATE sending_message SET status = %(sending)s, claim_token = %(token)s, claimed_at = %(now)s,
    handed_over_at = NULL, dispatched_at = NULL, attempts = attempts + 1
WHERE {which} AND status = %(queued)s
RETURNING {returning}
"""

_NEXT_DUE = """id = (
    SELECT id FROM sending_message
    WHERE channel_id = %(channel)s AND status = %(queued)s AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, id
    LIMIT 1{locks}
)"""

# On PostgreSQL the claim also reads what the send needs (the message, its channel, the
# enrolment and campaign of a campaign email, the language its sender reads, and what stops a
# send: its suppression, blocked domain and the team's limits by receiving domain) in the same
# statement, as the ORM's select_related and ``send_stoppers`` would in two more: each send of
# a run costs two round trips less.
_WITH_ROWS = """
WITH {before}claimed AS ({claim})
SELECT {first}{message}, {channel}, {enrollment}, {campaign}, se.language, {stoppers}
FROM {source}
LEFT JOIN {channels} ch ON ch.id = claimed.channel_id
LEFT JOIN {enrollments} en ON en.id = claimed.enrollment_id
LEFT JOIN {campaigns} ca ON ca.id = en.campaign_id
LEFT JOIN {users} se ON se.id = claimed.sender_id
"""


def _claim(which: str, params: dict[str, int | str | datetime]) -> tuple[Message, str] | None:
    """Claim the message ``which`` picks (a condition on ``sending_message``), if it is still
    queued: it (with its channel, enrolment and campaign) and our token, or None."""
    params = _claim_params(params)
    token = str(params["token"])
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM.format(which=which, returning="id"), params)
            row = cursor.fetchone()
        if row is None:
            return None
        related = Message.objects.select_related("channel", "enrollment__campaign")
        return related.get(pk=row[0]), token
    with bulk.statement_cursor() as cursor:
        cursor.execute(_claim_sql(which), params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _claimed_rows(row), token


def _claim_params(params: dict[str, int | str | datetime]) -> dict[str, int | str | datetime]:
    """A claim's parameters: ``params`` (what ``which`` names) and a new token."""
    return {
        **params,
        "sending": MessageStatus.SENDING,
        "queued": MessageStatus.QUEUED,
        "now": timezone.now(),
        "token": secrets.token_hex(16),
    }


_NAMED = re.compile(r"%\((\w+)\)s")


def _claim_after_sent(
    writes: str, params: dict[str, int | str | datetime]
) -> tuple[str, list[Any]]:
    """The statement of a send's outcome (``_DONE`` and ``writes``) that also claims the
    channel's next due message, and the claim's parameters in order (after the outcome's).

    The claim happens only if the outcome was written (our claim held: a worker that lost its
    message stops its run), and both commit at once or not at all: a worker that dies right
    after leaves the next message claimed and never handed over, which ``reconcile_stuck``
    queues again once the lease is over, as after any claim. Its first column counts the
    outcome's row; the claim's columns follow, all NULL when no message was due."""
    sql, names = _sent_then_claim_sql(writes)
    return sql, [params[name] for name in names]


@functools.cache
def _sent_then_claim_sql(writes: str) -> tuple[str, list[str]]:
    skip = connection.features.has_select_for_update_skip_locked
    which = _NEXT_DUE.format(locks="\n    FOR UPDATE SKIP LOCKED" if skip else "")
    sql = _claim_sql(
        which + " AND EXISTS (SELECT FROM done)",
        before=f"{_DONE}, {writes}, ",
        first="(SELECT count(*) FROM done), ",
        source="(SELECT 1) AS one\nLEFT JOIN claimed ON true",
    )
    # The outcome's values are positional: so are the claim's here, in the order they appear.
    return _NAMED.sub("%s", sql), _NAMED.findall(sql)


@functools.cache
def _claim_sql(which: str, before: str = "", first: str = "", source: str = "claimed") -> str:
    return _WITH_ROWS.format(
        before=before,
        first=first,
        source=source,
        claim=_CLAIM.format(which=which, returning="*"),
        message=bulk.columns(Message, "claimed"),
        channel=bulk.columns(Channel, "ch"),
        enrollment=bulk.columns(Enrollment, "en"),
        campaign=bulk.columns(Campaign, "ca"),
        stoppers=STOPPERS_COLUMNS,
        channels=Channel._meta.db_table,
        enrollments=Enrollment._meta.db_table,
        campaigns=Campaign._meta.db_table,
        users=User._meta.db_table,
    )


def _claimed_rows(row: tuple) -> Message:
    values = list(row)
    parts = []
    for model in (Message, Channel, Enrollment, Campaign):
        width = len(model._meta.concrete_fields)
        parts.append(bulk.instance(model, values[:width]))
        values = values[width:]
    message, channel, enrollment, campaign = parts
    assert isinstance(message, Message)
    message.sender_language = values[0] or ""  # type: ignore[attr-defined]
    message.stoppers = read_in_claim(message.tenant_id, message.to_email, values[1:])  # type: ignore[attr-defined]
    # As select_related leaves them: cached on the instance, the ids untouched.
    Message._meta.get_field("channel").set_cached_value(message, channel)
    Message._meta.get_field("enrollment").set_cached_value(message, enrollment)
    if enrollment is not None:
        Enrollment._meta.get_field("campaign").set_cached_value(enrollment, campaign)
    return message


def send_message(message_id: int) -> str:
    """Try to send one message now. Returns what happened (for logs and tests)."""
    claimed = claim(message_id)
    if claimed is None:
        return "skipped"
    return _send_claimed(*claimed)[0]


def send_run(message_id: int) -> str:
    """Send this message, then, over the same connection, its channel's next due messages, one
    claim each, until none is due, one is held, or the session's caps are reached
    (``MSC_SEND_SESSION_MESSAGES`` and ``_SECONDS``, and always in time for the task's soft
    limit). Returns what happened to the first message.

    Each message is claimed, checked, throttled and recorded on its own exactly as by
    ``send_message``; only the SMTP session (TCP, TLS, AUTH) is shared. Messages of the channel
    that were already handed to the broker find themselves sent and are skipped. If the
    connection drops, the message in hand is retried over a new one (before its hand-over) or
    flagged uncertain (after it); the run's later messages were never claimed and stay queued.
    """
    with sessions.run_scope():
        claimed = claim(message_id)
        if claimed is None:
            return "skipped"
        run = _Run()
        first, channel_id = _send_claimed(*claimed, run=run)
        outcome = first
        while channel_id is not None:
            # A message sent: its outcome's statement claimed the next one, or found none due.
            looked, claimed = run.looked, run.next
            run.looked, run.next = False, None
            if not looked:
                if not run.may_go_on():
                    break
                if outcome not in _RUN_GOES_ON and not (
                    outcome == f"held:{Hold.THROTTLE}" and _wait_for_turn(channel_id)
                ):
                    break
                claimed = claim_next(channel_id)
            if claimed is None:
                break
            run.count += 1
            outcome, _ = _send_claimed(*claimed, run=run)
    return first


def _wait_for_turn(channel_id: int) -> bool:
    """After a throttle held the run's message: if the channel's next message is due within
    ``RUN_WAIT_SECONDS`` (a per-second limit, say), wait for it with the session open and say
    so; a longer wait ends the run (the queue is woken by its own schedule)."""
    due = Message.objects.filter(channel_id=channel_id, status=MessageStatus.QUEUED).aggregate(
        next=Min("next_attempt_at")
    )["next"]
    if due is None:
        return False
    wait = (due - timezone.now()).total_seconds()
    if wait > RUN_WAIT_SECONDS:
        return False
    if wait > 0:
        time.sleep(wait)  # the provider's own pace, with the session held open for it
    return True


def claim_next(channel_id: int) -> tuple[Message, str] | None:
    """Claim the channel's next due message (the one ``dispatch_due`` would hand out first),
    skipping any another worker holds: it and our token, or None."""
    # Another worker's pick is skipped, not waited for (PostgreSQL); SQLite, the embedded
    # demo's, has one writer at a time and no row locks.
    skip = connection.features.has_select_for_update_skip_locked
    which = _NEXT_DUE.format(locks="\n    FOR UPDATE SKIP LOCKED" if skip else "")
    return _claim(which, {"channel": channel_id})


def _send_claimed(message: Message, token: str, run: _Run | None = None) -> tuple[str, int | None]:
    """Send a message we hold the claim of: what happened, and its channel."""
    # What the send writes (why it waits, why it failed, the feed's lines) is read by its
    # sender: in their language (their own choice; the product's when they left it blank).
    with translation.override(_language_of(message)):
        return _checked(message, token, run), message.channel_id


def _checked(message: Message, token: str, run: _Run | None) -> str:
    attempt = _Attempt(message, token, run)
    # Before any connection: one look-up on the (tenant, address) and (tenant, domain) indexes.
    read = getattr(message, "stoppers", None)  # what the claim read (PostgreSQL)
    suppressed, blocked, limits = send_stoppers(message.tenant_id, message.to_email, read=read)
    if suppressed:
        return attempt.suppressed(suppressed_text(message.to_email, suppressed))
    if blocked:
        text = gettext_noop("Not sent: %(domain)s is on your team's list of blocked domains.")
        return attempt.fail(sentence(text, domain=blocked))
    enrollment = message.enrollment
    if enrollment is not None:
        if enrollment.status != EnrollmentStatus.ACTIVE or (
            enrollment.campaign.status == CampaignStatus.ENDED
        ):
            return attempt.cancel(enrollment.ended_reason or CAMPAIGN_ENDED)
        if enrollment.campaign.status == CampaignStatus.PAUSED:
            return attempt.hold(Hold.PAUSED, None, gettext_noop("The campaign is paused."))
    channel = message.channel
    if channel is None:
        return attempt.fail(
            gettext_noop("Not sent: its channel was removed. Send it again from a channel.")
        )
    return _through_channel(attempt, channel, limits)


def _through_channel(attempt: _Attempt, channel: Channel, limits: domainlimits.Limits) -> str:
    message = attempt.message
    now = timezone.now()
    if channel.status == ChannelStatus.DISABLED:
        return attempt.hold(Hold.CHANNEL, None, HELD_FOR_CHANNEL)
    if wrong_sender := channel.refuses_sender(message.from_email):
        # A mailbox sends only as its own addresses; the provider would refuse, or rewrite
        # the From. Nothing is tried: the message waits until its sender sends it through a
        # channel that may send as it (the Outbox's "Send it through …").
        text = sentence(gettext_noop("Not sent: %(why)s"), why=wrong_sender)
        return attempt.hold(Hold.CHANNEL, None, text)
    if channel.status != ChannelStatus.ACTIVE:
        detail = (
            sentence(
                gettext_noop("Waiting for %(channel)s: %(why)s"),
                channel=channel.label,
                why=again(channel.status_message),
            )
            if channel.status_message
            else sentence(
                gettext_noop("Waiting for %(channel)s: it is not active."), channel=channel.label
            )
        )
        hold = Hold.SPIKE if channel.status == ChannelStatus.PAUSED else Hold.AUTH
        return attempt.hold(hold, None, detail)
    if channel.backoff_until and channel.backoff_until > now:
        detail = sentence(
            gettext_noop("%(reason)s; resuming at %(when)s."),
            reason=again(channel.backoff_reason),
            when=When(channel.backoff_until),
        )
        return attempt.hold(Hold.BACKOFF, channel.backoff_until, detail)
    team = (
        TeamSendingSettings.objects.filter(tenant_id=channel.tenant_id).first()
        if channel.kind_spec.email_connection
        else None
    )
    reservation = quota.reserve(channel, quota.rules_for(channel, team))
    if isinstance(reservation, quota.Held):
        until = reservation.until_datetime
        hold = Hold.CAP if reservation.rule.name == "day" else Hold.THROTTLE
        detail = sentence(
            gettext_noop("%(limit)s; next send at %(when)s."),
            limit=reservation.rule.label,
            when=When(until),
        )
        messages_hold_for_channel(channel=channel, hold=hold, until=until, detail=detail)
        feed.notify_throttled(
            message.tenant_id,
            message.sender_id,
            sentence(gettext_noop("Your mail is waiting: %(why)s"), why=detail),
            _folder("queued"),
        )
        return attempt.hold(hold, until, detail)
    # The team's limits by receiving domain and paused providers (``sending.domainlimits``).
    if domain_held := domainlimits.check(message, limits=limits):
        quota.release(reservation)
        frees = domain_held.until
        detail = (
            sentence(
                gettext_noop("%(limit)s; next send at %(when)s."),
                limit=domain_held.label,
                when=When(frees),
            )
            if frees
            else sentence(gettext_noop("%(limit)s."), limit=domain_held.label)
        )
        text = sentence(gettext_noop("Your mail is waiting: %(why)s"), why=detail)
        feed.notify_throttled(message.tenant_id, message.sender_id, text, _folder("queued"))
        return attempt.hold(domain_held.hold, frees, detail)
    try:
        data = mime.build(
            message_id=message.message_id,
            from_email=message.from_email,
            from_name=message.from_name,
            to_email=message.to_email,
            subject=message.subject,
            body=message.body,
            extra_headers=_esp_headers(channel, message.message_id),
        )
    except mime.HeaderInjection as error:
        quota.release(reservation)
        return attempt.fail(
            sentence(gettext_noop("Refused before sending: %(error)s"), error=error)
        )
    handed_over = False

    def on_handover() -> None:
        nonlocal handed_over
        attempt.handed_over()
        handed_over = True

    try:
        reply = channel.kind_spec.deliver(
            channel,
            sender=message.from_email,
            recipient=message.to_email,
            data=data,
            on_handover=on_handover,
        )
    except SendFailure as failure:
        # A refusal the server answered (even to the content) took nothing: its slot is given
        # back, so that a push-back does not use up the window it waits for.
        refused = not handed_over or failure.code is not None
        if refused and failure.kind not in (PERMANENT, UNCERTAIN):
            quota.release(reservation)
        return _failed(attempt, channel, failure)
    except Exception as error:
        # A bug or a broken environment (say, a missing CA file) must not leave the message
        # claimed or crash the page that queued it: before the hand-over it is retried, after
        # it the outcome is unknown.
        log.exception("sending message %s failed unexpectedly", message.pk)
        if handed_over:
            internal = SendFailure(UNCERTAIN, f"Internal error after the hand-over ({error!r}).")
        else:
            quota.release(reservation)
            internal = SendFailure(RETRY, f"Internal error before sending ({error!r})")
        return _failed(attempt, channel, internal)
    if channel.backoff_level:
        channel_services.channel_back_off_end(channel=channel)
    return attempt.sent(reply)


def _failed(attempt: _Attempt, channel: Channel, failure: SendFailure) -> str:
    message = attempt.message
    code = str(failure.code or "")[:3]
    now = timezone.now()
    if failure.kind == AUTH:
        if channel.status == ChannelStatus.ACTIVE:
            channel_services.channel_mark_needs_attention(channel=channel, message=failure.text)
        detail = sentence(
            gettext_noop("Waiting for re-authentication of %(channel)s: %(why)s"),
            channel=channel.label,
            why=failure.text,
        )
        messages_hold_for_channel(channel=channel, hold=Hold.AUTH, until=None, detail=detail)
        return attempt.hold(Hold.AUTH, None, detail, tried=True)
    if failure.channel_level:
        return _push_back(attempt, channel, failure, now)
    if failure.kind == RETRY:
        tries = message.attempts
        if tries >= settings.MSC_SEND_MAX_ATTEMPTS:
            text = sentence(
                ngettext_lazy(
                    "Gave up after %(n)s attempt: %(why)s",
                    "Gave up after %(n)s attempts: %(why)s",
                    "n",
                ),
                n=tries,
                why=failure.text,
            )
            return attempt.fail(text, code=code)
        until = now + timedelta(seconds=retry_delay(tries))
        detail = sentence(
            gettext_noop("Temporary problem: %(why)s. Next try at %(when)s."),
            why=failure.text,
            when=When(until),
        )
        return attempt.hold(Hold.RETRY, until, detail, tried=True)
    if failure.kind == PERMANENT:
        refused = failure.text
        if not isinstance(refused, Sentence):  # the server's words: a sentence around them
            refused = sentence(REFUSED, words=refused)
        return attempt.fail(refused, code=code)
    uncertain = gettext_noop(
        "Delivery uncertain: %(why)s It was not resent automatically; check with the recipient "
        "before retrying."
    )
    return attempt.fail(sentence(uncertain, why=failure.text), uncertain=True)


def _push_back(attempt: _Attempt, channel: Channel, failure: SendFailure, now: datetime) -> str:
    """The provider pushed back on the whole channel: it waits, every queued message of it moves
    to the same time (keeping its place), and the sender hears of it once per run."""
    message = attempt.message
    level = channel.backoff_level + 1
    said = failure.text if len(failure.text) <= 200 else failure.text[:199] + "…"
    if failure.kind == QUOTA:
        until = _quota_frees(channel, failure, level, now)
        provider = channel.kind_spec.provider(channel)
        # English's possessive differs after an s; every sentence names the provider whole.
        reason = sentence(
            gettext_noop("%(provider)s' daily sending limit reached (%(said)s)")
            if provider.endswith("s")
            else gettext_noop("%(provider)s's daily sending limit reached (%(said)s)"),
            provider=provider,
            said=said,
        )
    else:
        seconds = failure.retry_after or _jitter(
            min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (level - 1))
        )
        until = now + timedelta(seconds=seconds)
        reason = sentence(
            gettext_noop("%(channel)s asked us to slow down (%(said)s)"),
            channel=channel.label,
            said=said,
        )
    channel_services.channel_back_off(channel=channel, until=until, level=level, reason=reason)
    detail = sentence(
        gettext_noop("%(reason)s; resuming at %(when)s."), reason=reason, when=When(until)
    )
    messages_hold_for_channel(channel=channel, hold=Hold.BACKOFF, until=until, detail=detail)
    if level == 1:  # the first push-back of a run, not each one after it
        feed.notify_throttled(message.tenant_id, message.sender_id, detail, _folder("queued"))
    return attempt.hold(Hold.BACKOFF, until, detail, tried=True)


def _quota_frees(channel: Channel, failure: SendFailure, level: int, now: datetime) -> datetime:
    """When a channel whose provider says its quota is used up may try again: when the provider
    says, else when the oldest of our sends in the channel's rolling day leaves it (at least a
    minute away), else (no rolling day, or none of ours in it) an hour, doubling with each
    refusal, up to a day. A shorter window of ours (a custom SMTP limit per minute) says nothing
    about the provider's day."""
    if failure.retry_after:
        return now + timedelta(seconds=failure.retry_after)
    limits = channel.kind_spec.limits(channel)
    days = [rule for rule in limits if rule.seconds >= QUOTA_WINDOW_SECONDS]
    frees = quota.frees_at(channel, days, now.timestamp())
    if frees is not None:
        return max(frees, now + timedelta(seconds=BACKOFF_BASE_SECONDS))
    seconds = min(QUOTA_CAP_SECONDS, QUOTA_BASE_SECONDS * 2 ** (level - 1))
    return now + timedelta(seconds=seconds)


# --- periodic -------------------------------------------------------------------------------


def reconcile_stuck(now: datetime | None = None) -> tuple[int, int]:
    """Messages whose worker vanished: requeue those never handed over, flag the others."""
    now = now or timezone.now()
    # ``now`` may be a later moment (a lease taken as over); what is requeued is due at once.
    due = min(now, timezone.now())
    stuck = Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=now - lease())
    requeued = stuck.filter(handed_over_at__isnull=True).update(
        status=MessageStatus.QUEUED,
        claim_token="",
        hold=Hold.NONE,
        # Stored in English and shown in the reader's language (``Message.detail_text``).
        status_detail=gettext_noop("Its worker stopped before sending it; queued again."),
        next_attempt_at=due,
        dispatched_at=None,
    )
    uncertain = gettext_noop(
        "Delivery uncertain: the worker stopped after handing the message to the server, so it "
        "may have been delivered. It was not resent automatically; check with the recipient "
        "before retrying."
    )
    with transaction.atomic():
        # Locked first, so that the feed tells of exactly the messages this run flags.
        handed = list(
            stuck.filter(handed_over_at__isnull=False)
            .select_for_update(skip_locked=True)
            .values_list("pk", "tenant_id", "sender_id", "to_email")
        )
        flagged = Message.objects.filter(pk__in=[row[0] for row in handed]).update(
            status=MessageStatus.FAILED,
            uncertain=True,
            hold=Hold.NONE,
            failed_at=now,
            status_detail=uncertain,
        )
        for _pk, tenant_id, sender_id, to_email in handed:
            text = sentence(
                gettext_noop("Not sent to %(to)s? %(why)s"), to=to_email, why=sentence(uncertain)
            )
            feed.notify(tenant_id, [(sender_id, FeedKind.FAILED, text, _folder("failed"))])
    return requeued, flagged


def dispatch_due(limit: int = 500) -> int:
    """Promote scheduled mail, release holds whose cause has gone, and enqueue what is due."""
    from sending import tasks

    now = timezone.now()
    Message.objects.filter(status=MessageStatus.SCHEDULED, scheduled_at__lte=now).update(
        status=MessageStatus.QUEUED, next_attempt_at=now, dispatched_at=None
    )
    Message.objects.filter(
        status=MessageStatus.QUEUED,
        hold__in=[Hold.AUTH, Hold.SPIKE],
        channel__status=ChannelStatus.ACTIVE,
    ).update(hold=Hold.NONE, status_detail="", next_attempt_at=now, dispatched_at=None)
    reconcile_stuck(now)
    imports_dispatch_due(now)
    due = list(
        Message.objects.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=redispatch_before(now)))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if due:
        Message.objects.filter(pk__in=due).update(dispatched_at=now)
        for pk in due:
            enqueue.after_commit(tasks.send_message, pk)
    return len(due)
