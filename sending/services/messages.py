"""Messages: compose and store, retry, delete, hold and release, mark bounced and undo that, and
what a message's fate does to its person's enrolment. ``sending`` alone writes these rows: other
apps call these services."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Case, CharField, Count, F, Q, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Channel, Identity, TeamSendingSettings
from channels.routing import Route, Source, route
from msc_admin import bulk, enqueue
from msc_admin.stored import Day, Reason, Sentence, sentence, stored, values_of
from sending import domainlimits, merge, mime
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    CAMPAIGN_ENDED_SOFT,
    CAMPAIGN_ENDED_SUPPRESSED,
    HELD_FOR_CHANNEL,
    SOFT_BOUNCE_UNDONE,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Hold,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from sending.services.suppressions import (
    Cause,
    normal,
    suppressed_text,
    suppression_for,
    suppressions_add_for_bounces,
    suppressions_lift_for_messages,
)
from sending.services.suppressions import bounce_detail_stored as suppression_detail
from sending.services.templates import render_for, template_check


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def _covering(email: str) -> list[str]:
    """The domains a blocked-domain entry may name to cover this address: its own, and each
    parent."""
    parts = domain_of(email).split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def blocked_domain(tenant_id: int, email: str) -> str | None:
    """The blocked domain that covers this address (the domain itself or a parent), if any."""
    found = BlockedDomain.objects.filter(tenant_id=tenant_id, domain__in=_covering(email))
    return found.values_list("domain", flat=True).first()


# ``send_stoppers``'s look-ups as columns of the claim of a send (``sending.pipeline``), for
# the row it names ``claimed``: the same scalar look-ups on the same indexes, the address
# lowered and its covering domains (``_covering``) made by PostgreSQL, then the team's limits.
# PostgreSQL's lower() is Python's for ASCII only: ``read_in_claim`` says when they may be used.
STOPPERS_COLUMNS = f"""
(SELECT id FROM {Suppression._meta.db_table}
    WHERE tenant_id = claimed.tenant_id AND address = lower(claimed.to_email)),
(SELECT b.domain FROM {BlockedDomain._meta.db_table} b
    WHERE b.tenant_id = claimed.tenant_id AND b.domain IN (
        SELECT array_to_string(parts.p[i:], '.')
        FROM (SELECT string_to_array(lower(substring(claimed.to_email FROM '[^@]*$')), '.') AS p)
            AS parts,
            generate_series(1, cardinality(parts.p) - 1) AS i
    )
    ORDER BY b.domain LIMIT 1),
{domainlimits.LIMITS_COLUMNS.format(tenant="claimed.tenant_id")}"""  # noqa: S608 - names from the models

Stoppers = tuple[Any, str | None, domainlimits.Limits]


def read_in_claim(tenant_id: int, email: str, columns: Sequence[Any]) -> Stoppers | None:
    """What ``STOPPERS_COLUMNS`` read, for ``send_stoppers``; None when the address is not
    one PostgreSQL normalises as we do (not ASCII, or with spaces around it)."""
    if not email.isascii() or email != email.strip():
        return None
    entry_id, blocked, paused, caps = columns
    return entry_id, blocked, domainlimits.limits_from(tenant_id, paused, caps)


def send_stoppers(
    tenant_id: int, email: str, *, read: Stoppers | None = None
) -> tuple[Suppression | None, str | None, domainlimits.Limits]:
    """What stops a send to this address right now: its suppression entry and the blocked
    domain that covers it; and the team's limits by receiving domain, checked later in the
    send (``domainlimits.check``). One statement (every send asks, just before it goes): two
    scalar look-ups on the (tenant, address) and (tenant, domain) unique indexes beside the
    team's caps; none when the claim read them already (``read``, ``read_in_claim``)."""
    if read is not None:
        entry_id, domain, limits = read
        found = Suppression.objects.filter(pk=entry_id).first() if entry_id is not None else None
        return found, domain, limits
    domains = _covering(email) or [""]
    suppression, blocked = Suppression._meta.db_table, BlockedDomain._meta.db_table
    more = (
        f", (SELECT id FROM {suppression} WHERE tenant_id = %(tenant)s AND address = %(address)s)"  # noqa: S608 - table names from models
        f", (SELECT domain FROM {blocked} WHERE tenant_id = %(tenant)s AND domain IN "
        f"({', '.join(f'%(d{i})s' for i in range(len(domains)))}) ORDER BY domain LIMIT 1)"
    )
    params = {"address": normal(email), **{f"d{i}": d for i, d in enumerate(domains)}}
    limits, (entry_id, domain) = domainlimits.limits_read(tenant_id, more, params)
    entry = Suppression.objects.filter(pk=entry_id).first() if entry_id is not None else None
    return entry, domain, limits


def redispatch_before(now: datetime) -> datetime:
    """Work handed to the broker before this and not started since is handed over again."""
    return now - timedelta(seconds=settings.MSC_REDISPATCH_SECONDS)


_batch = threading.local()


@contextmanager
def one_run_per_channel() -> Iterator[None]:
    """For services that queue many messages in one transaction (a campaign starting, people
    enrolled): inside this block, queued messages are not handed to workers one by one. When
    the block ends, each channel gets one task per ``MSC_SEND_SESSION_MESSAGES`` of them, after
    the commit; each task's run sends the channel's due messages over one session
    (``pipeline.send_run``). One left over (a run ended by a throttle, say) is due and never
    dispatched, so ``dispatch_due`` hands it over within seconds."""
    if getattr(_batch, "ids", None) is not None:
        yield
        return
    _batch.ids, _batch.routes = {}, {}
    try:
        yield
        collected: dict[int, list[int]] = _batch.ids
    finally:
        _batch.ids = _batch.routes = None
    from sending import tasks

    for ids in collected.values():
        for first in ids[:: settings.MSC_SEND_SESSION_MESSAGES]:
            enqueue.after_commit(tasks.send_message, first, robust=True)


def enqueue_on_commit(message: Message) -> None:
    """Hand a due message to a worker once the transaction that made it due has committed."""
    from sending import tasks

    batch = getattr(_batch, "ids", None)
    if message.status == MessageStatus.QUEUED and batch is not None and message.channel_id:
        batch.setdefault(message.channel_id, []).append(message.pk)
        return
    if message.status == MessageStatus.QUEUED:
        # robust: with the broker down the message is saved all the same and the request
        # succeeds; the error is logged, and dispatch_due hands the message over later.
        enqueue.after_commit(tasks.send_message, message.pk, robust=True)


# --- compose and store ------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    to_email: str
    subject: str
    body: str
    identity: Identity | None = None
    source: str = Source.WEB
    template: Template | None = None
    contact: Contact | None = None
    send_at: datetime | None = None


class BlockedRecipient(ValidationError):
    """The recipient's domain is on the team's list of blocked domains."""

    def __init__(self, domain: str) -> None:
        text = gettext("%(domain)s is on your team's list of blocked domains.")
        super().__init__(text % {"domain": domain}, code="blocked")
        self.domain = domain


def _contact_for(tenant: Tenant, draft: Draft) -> Contact | None:
    if draft.contact is not None:
        return draft.contact
    return Contact.objects.for_tenant(tenant).filter(email=draft.to_email.strip()).first()


def _filled(draft: Draft, sender: User, contact: Contact | None) -> merge.Rendered:
    return render_for(
        subject=draft.subject,
        body=draft.body,
        contact=contact,
        to_email=draft.to_email.strip(),
        identity=draft.identity,
        sender=sender,
    )


def message_preview(*, tenant: Tenant, sender: User, draft: Draft) -> merge.Rendered:
    """The draft's subject and body with its merge fields filled in, as ``message_compose``
    would store them."""
    return _filled(draft, sender, _contact_for(tenant, draft))


def message_compose(
    *,
    tenant: Tenant,
    sender: User,
    draft: Draft,
    enrollment: Enrollment | None = None,
    step: CampaignStep | None = None,
) -> Message:
    """One email as written (typed, a template's, a campaign step's): its merge fields are
    filled in for the recipient, then it is validated, routed and stored, and sent after commit
    (or at ``send_at``). The contact whose values fill the fields is the draft's, or else the
    tenant's contact with the recipient's address.

    A one-off email to a blocked domain is refused here (``BlockedRecipient``); a campaign step
    is stored and fails when it is due (every send checks the list), so that one blocked person
    never stops an enrolment. Raises ``ValidationError`` with a sentence a user can act on.
    """
    if step is None and (blocked := blocked_domain(tenant.pk, draft.to_email)):
        raise BlockedRecipient(blocked)
    template_check(draft.subject, draft.body)
    contact = _contact_for(tenant, draft)
    rendered = _filled(draft, sender, contact)
    filled = replace(draft, subject=rendered.subject, body=rendered.body, contact=contact)
    return _store(tenant=tenant, sender=sender, draft=filled, enrollment=enrollment, step=step)


def message_create(
    *,
    tenant: Tenant,
    sender: User,
    draft: Draft,
    enrollment: Enrollment | None = None,
    step: CampaignStep | None = None,
) -> Message:
    """Validate, route and store one message as given (no merge fields are filled in); it is
    sent after commit (or at ``send_at``). Raises ``ValidationError`` with a sentence a user can
    act on."""
    return _store(tenant=tenant, sender=sender, draft=draft, enrollment=enrollment, step=step)


def _route(sender: User, draft: Draft) -> Route:
    """The draft's route; inside ``one_run_per_channel`` (a batch of one transaction) each
    sender, identity and source is routed once."""
    routes = getattr(_batch, "routes", None)
    if routes is None:
        return route(user=sender, identity=draft.identity, source=draft.source)
    key = (sender.pk, draft.identity.pk if draft.identity else None, draft.source)
    if key not in routes:
        routes[key] = route(user=sender, identity=draft.identity, source=draft.source)
    found: Route = routes[key]
    return found


def _store(
    *,
    tenant: Tenant,
    sender: User,
    draft: Draft,
    enrollment: Enrollment | None,
    step: CampaignStep | None,
) -> Message:
    to_email = draft.to_email.strip()
    try:
        mime.check_header_values(recipient=to_email, subject=draft.subject)
        validate_email(to_email)
    except (mime.HeaderInjection, ValidationError) as error:
        raise ValidationError(getattr(error, "message", str(error))) from None
    where = _route(sender, draft)
    if where.channel is None:
        raise ValidationError(where.reason)
    channel = where.channel
    identity = draft.identity
    if identity is not None:
        from_email, from_name = identity.email, identity.name
    else:
        from_email = channel.account_email or sender.email
        from_name = sender.get_full_name()
    mime.check_header_values(from_name=from_name)
    now = timezone.now()
    later = draft.send_at is not None and draft.send_at > now
    status = MessageStatus.SCHEDULED if later else MessageStatus.QUEUED
    detail = ""
    if suppressed := suppression_for(tenant.pk, to_email):
        # Stored, so that its sender finds it (and why) in the Outbox, but never queued.
        status, detail, later = (
            MessageStatus.SUPPRESSED,
            suppressed_text(to_email, suppressed),
            False,
        )
    # Everything above only reads and may refuse; what writes is one transaction, with no
    # savepoint of its own inside a caller's (a campaign starting queues hundreds of messages
    # in one: two round trips fewer each). A refusal raised above leaves a caller's
    # transaction usable.
    with transaction.atomic(savepoint=False):
        message = bulk.create(
            Message,
            tenant=tenant,
            sender=sender,
            identity=identity,
            channel=channel,
            source=draft.source,
            template=draft.template,
            campaign_step=step,
            enrollment=enrollment,
            contact=draft.contact,
            to_email=to_email,
            to_domain=domain_of(to_email),
            from_email=from_email,
            from_name=from_name,
            subject=draft.subject,
            body=draft.body,
            message_id=mime.new_message_id(from_email),
            status=status,
            status_detail=stored(detail),
            scheduled_at=draft.send_at if later else None,
            next_attempt_at=None if later or suppressed else now,
            dispatched_at=None if later or suppressed else now,
        )
        if suppressed and enrollment is not None:
            enrollment_end(enrollment_id=enrollment.pk, reason=CAMPAIGN_ENDED_SUPPRESSED)
        enqueue_on_commit(message)
    return message


# --- retry, delete, hold and release ----------------------------------------------------------


def message_retry(*, message: Message) -> Message:
    if not message.can_retry:
        raise ValidationError(gettext("Only failed messages can be retried."))
    if (entry := suppression_for(message.tenant_id, message.to_email)) is not None:
        raise ValidationError(
            gettext(
                "Not retried: %(address)s is on your team's suppression list (%(why)s). An admin "
                "can take it off the list first."
            )
            % {"address": message.to_email, "why": entry.why}
        )
    now = timezone.now()
    updated = Message.objects.filter(pk=message.pk, status=MessageStatus.FAILED).update(
        status=MessageStatus.QUEUED,
        hold=Hold.NONE,
        status_detail=gettext_noop("Retry requested."),  # shown translated (detail_text)
        uncertain=False,
        attempts=0,
        next_attempt_at=now,
        dispatched_at=now,
        failed_at=None,
    )
    message.refresh_from_db()
    if updated:
        enqueue_on_commit(message)
    return message


def message_delete(*, message: Message) -> None:
    if message.is_campaign:
        raise ValidationError(
            gettext("Campaign emails cannot be deleted; end the campaign instead.")
        )
    if not message.can_delete:
        raise ValidationError(
            gettext("This message is being sent or was sent; it cannot be deleted.")
        )
    Message.objects.filter(pk=message.pk).exclude(status=MessageStatus.SENDING).delete()


@transaction.atomic
def messages_hold_for_channel(
    *, channel: Channel, hold: str, until: datetime | None, detail: str
) -> int:
    """Push every due queued message of the channel to ``until`` (None: until its cause is
    gone, see ``pipeline.dispatch_due``): one full rule, one update. Returns how many."""
    queue = Message.objects.filter(channel=channel, status=MessageStatus.QUEUED)
    if until is not None:  # a timed hold never overrides an open-ended one (auth, paused)
        queue = queue.filter(next_attempt_at__lt=until)
    return queue.update(
        hold=hold, next_attempt_at=until, status_detail=stored(detail), dispatched_at=None
    )


@transaction.atomic
def messages_release_limit_holds(*, tenant_id: int, channel_ids: list[int] | None) -> int:
    """A sending limit changed (``channels.signals.limits_changed``): the mail it held is
    looked at again now. Whatever is still over a limit is held again by the pipeline, with a
    new time; the rest goes. Returns how many."""
    held = Message.objects.filter(
        tenant_id=tenant_id, status=MessageStatus.QUEUED, hold__in=[Hold.THROTTLE, Hold.CAP]
    )
    if channel_ids is not None:
        held = held.filter(channel_id__in=channel_ids)
    return held.update(next_attempt_at=timezone.now(), dispatched_at=None)


@transaction.atomic
def messages_hold_until_rerouted(*, channel_ids: list[int]) -> int:
    """The queued and scheduled mail of these (retired) channels waits, held for a channel,
    until its sender sends it through another one (``messages_reroute_held``). Scheduled mail
    keeps its time (``scheduled_at``): released, it is scheduled again. Returns how many."""
    return Message.objects.filter(
        channel_id__in=channel_ids, status__in=[MessageStatus.QUEUED, MessageStatus.SCHEDULED]
    ).update(
        status=MessageStatus.QUEUED,
        hold=Hold.CHANNEL,
        next_attempt_at=None,
        dispatched_at=None,
        status_detail=HELD_FOR_CHANNEL,
    )


@dataclass(frozen=True)
class Rerouted:
    """What ``messages_reroute_held`` did: how many go out now, how many wait for the time
    they were scheduled for (the first of those times), and why the rest could not move."""

    now: int = 0
    scheduled: int = 0
    first_scheduled: datetime | None = None
    reason: str = ""


@transaction.atomic
def messages_reroute_held(*, tenant: Tenant, user: User) -> Rerouted:
    """The user's mail held for want of a channel (its channel was retired) goes through the
    channel each message would take now: at once, or, if it was scheduled for a later time,
    at that time."""
    held = list(
        Message.objects.for_tenant(tenant)
        .filter(sender=user, status=MessageStatus.QUEUED, hold=Hold.CHANNEL)
        .select_for_update()
    )
    routes: dict[tuple[int | None, str], Route] = {}
    now = timezone.now()
    by_channel: dict[tuple[int, bool], list[Message]] = {}
    reason = ""
    for message in held:
        key = (message.identity_id, message.source)
        if key not in routes:
            routes[key] = route(user=user, identity=message.identity, source=message.source)
        where = routes[key]
        if where.problem or where.channel is None:
            reason = where.problem
            continue
        later = message.scheduled_at is not None and message.scheduled_at > now
        by_channel.setdefault((where.channel.pk, later), []).append(message)
    for (channel_id, later), messages in by_channel.items():  # one statement per group
        mine = Message.objects.filter(pk__in=[m.pk for m in messages])
        if later:
            mine.update(
                channel_id=channel_id,
                status=MessageStatus.SCHEDULED,
                hold=Hold.NONE,
                status_detail="",
                next_attempt_at=None,
                dispatched_at=None,
            )
            continue
        mine.update(
            channel_id=channel_id,
            hold=Hold.NONE,
            status_detail="",
            next_attempt_at=now,
            dispatched_at=now,
        )
        for message in messages:
            enqueue_on_commit(message)
    scheduled = [m for (_, later), ms in by_channel.items() if later for m in ms]
    return Rerouted(
        now=sum(len(ms) for (_, later), ms in by_channel.items() if not later),
        scheduled=len(scheduled),
        first_scheduled=min((m.scheduled_at for m in scheduled if m.scheduled_at), default=None),
        reason=reason,
    )


@transaction.atomic
def messages_reword(
    *, tenant: Tenant, containing: str, reworded: Callable[[str, int], Combinable]
) -> int:
    """Reword, in the database, why the tenant's messages are where they are (``status_detail``)
    where it contains ``containing``; ``reworded(field, max_length)`` is the new text."""
    return Message.objects.filter(tenant=tenant, status_detail__contains=containing).update(
        status_detail=reworded("status_detail", 500)
    )


# --- bounced, and "not a bounce" --------------------------------------------------------------


@dataclass(frozen=True)
class BounceKind:
    """What kind of bounce marks a message (``messages_bounced``): hard ones end the person's
    campaign and suppress the address; soft ones retry the step (``campaign_retry_steps``) until
    they repeat too often. ``code`` ("550 5.1.1") and ``at`` go into the suppression's words."""

    hard: bool = True
    event_id: int | None = None
    code: str = ""
    at: datetime | None = None


# How long a campaign step that soft-bounced waits before it is tried again.
SOFT_RETRY_DELAY = timedelta(days=1)


@transaction.atomic
def message_bounced(*, message: Message, detail: str = "", kind: BounceKind | None = None) -> None:
    """The message bounced: it is marked, and (hard) the rest of that person's campaign ends."""
    messages_bounced({message.pk: detail}, kinds={message.pk: kind} if kind else None)


@dataclass(frozen=True)
class _Bounced:
    pk: int
    enrollment_id: int | None
    tenant_id: int
    to_email: str
    subject: str
    step_id: int | None


def messages_bounced(
    details: dict[int, str], *, kinds: dict[int, BounceKind] | None = None
) -> list[int]:
    """Mark these sent messages bounced ({pk: why}, of the kind ``kinds`` says, hard when not
    given), in a few statements whatever their number. A hard bounce ends the campaign for its
    person and suppresses the address; a soft one retries the person's step later, and the
    ``soft_bounce_limit``-th within ``soft_bounce_days`` ends it and suppresses the address.
    Returns the pks that changed (those still sent). Runs inside the transaction that recorded
    the bounces."""
    if not details:
        return []
    details = {pk: stored(text) for pk, text in details.items()}
    kinds = kinds or {}
    now = timezone.now()
    soft = {pk for pk, kind in kinds.items() if not kind.hard}
    if connection.vendor == "postgresql":
        rows = _bounce_rows_postgresql(details, soft, now)
    else:
        rows = _bounce_rows_portable(details, soft, now)
    hard_rows = [row for row in rows if row.pk not in soft]
    enrollments_end(
        enrollment_ids={r.enrollment_id for r in hard_rows if r.enrollment_id},
        reason=CAMPAIGN_ENDED_BOUNCE,
    )
    causes = [
        _cause(row, kinds.get(row.pk) or BounceKind(), SuppressionReason.HARD_BOUNCE, now)
        for row in hard_rows
    ]
    soft_rows = [row for row in rows if row.pk in soft]
    if soft_rows:
        causes += _soft_bounced(soft_rows, kinds, details, now)
    # A hard bounce of a message that reached its server but is not recorded sent (its worker
    # is writing the outcome right now, or died and left it "uncertain") proves all the same
    # that the address is dead: it is suppressed and its person's campaign ends. The message
    # itself, never counted sent, is left as it is.
    changed = {row.pk for row in rows}
    unrecorded = _handed_over_rows([pk for pk in details if pk not in soft and pk not in changed])
    enrollments_end(
        enrollment_ids={r.enrollment_id for r in unrecorded if r.enrollment_id},
        reason=CAMPAIGN_ENDED_BOUNCE,
    )
    causes += [
        _cause(row, kinds.get(row.pk) or BounceKind(), SuppressionReason.HARD_BOUNCE, now)
        for row in unrecorded
    ]
    suppressions_add_for_bounces(causes)
    return sorted(changed)


def _handed_over_rows(pks: list[int]) -> list[_Bounced]:
    """Of these messages, those handed to their server and not recorded sent: being recorded,
    or failed as uncertain."""
    if not pks:
        return []
    fields = ("pk", "enrollment_id", "tenant_id", "to_email", "subject", "campaign_step_id")
    found = Message.objects.filter(pk__in=pks, handed_over_at__isnull=False).filter(
        Q(status=MessageStatus.SENDING) | Q(status=MessageStatus.FAILED, uncertain=True)
    )
    return [_Bounced(*row) for row in found.order_by("pk").values_list(*fields)]


def _cause(row: _Bounced, kind: BounceKind, reason: str, now: datetime) -> Cause:
    detail = suppression_detail(
        hard=reason == SuppressionReason.HARD_BOUNCE,
        code=kind.code,
        when=kind.at or now,
        subject=row.subject,
    )
    return Cause(
        row.tenant_id, row.to_email, reason, detail, row.pk, kind.event_id, at=kind.at or now
    )


def soft_retry_text(detail: str, at: datetime) -> Sentence:
    """What a step tried again after a soft bounce says in the Outbox: "Retrying after a soft
    bounce (mailbox full) on Nov 29, 2026." ``detail`` is the bounced message's stored
    sentence (``bounces.services.bounce_detail``), whose reason code names the reason; ``at``
    is when it bounced."""
    reason = values_of(detail).get("reason")
    code = reason.get("reason") if isinstance(reason, dict) else None
    if not code or code == "unknown":
        return sentence(gettext_noop("Retrying after a soft bounce on %(day)s."), day=Day(at))
    return sentence(
        gettext_noop("Retrying after a soft bounce (%(why)s) on %(day)s."),
        why=Reason(code, lower=True),
        day=Day(at),
    )


def _soft_bounced(
    rows: list[_Bounced], kinds: dict[int, BounceKind], details: dict[int, str], now: datetime
) -> list[Cause]:
    """Soft bounces: count each address's within the team's window; at the limit the person's
    campaign ends and the address is suppressed, below it the step is tried again later (and
    says so in the Outbox)."""
    from sending.services.campaigns import campaign_retry_steps

    causes: list[Cause] = []
    ended: set[int] = set()
    for tenant_id in sorted({row.tenant_id for row in rows}):
        rules = TeamSendingSettings.of_tenant(tenant_id)
        mine = [row for row in rows if row.tenant_id == tenant_id]
        counts = dict(
            Message.objects.annotate(address=Lower("to_email"))
            .filter(
                tenant_id=tenant_id,
                address__in={row.to_email.lower() for row in mine},
                sent_at__gte=now - timedelta(days=rules.soft_bounce_days),
                status=MessageStatus.BOUNCED,
                bounced_soft=True,
            )
            .values("address")
            .annotate(n=Count("pk"))
            .values_list("address", "n")
        )
        for row in mine:
            if counts.get(row.to_email.lower(), 0) >= rules.soft_bounce_limit:
                causes.append(_cause(row, kinds[row.pk], SuppressionReason.SOFT_REPEATED, now))
                if row.enrollment_id:
                    ended.add(row.enrollment_id)
    enrollments_end(enrollment_ids=ended, reason=CAMPAIGN_ENDED_SOFT)
    why = {
        (row.enrollment_id, row.step_id): soft_retry_text(
            details.get(row.pk, ""), kinds[row.pk].at or now
        )
        for row in rows
        if row.enrollment_id and row.step_id and row.enrollment_id not in ended
    }
    campaign_retry_steps(steps=sorted(why), at=now + SOFT_RETRY_DELAY, why=why)
    return causes


def _bounce_rows_postgresql(
    details: dict[int, str], soft: set[int], now: datetime
) -> list[_Bounced]:
    """One UPDATE … FROM unnest(…) RETURNING: the ids and texts travel as array parameters,
    so the statement stays small however many messages a batch holds."""
    ids = sorted(details)
    table = Message._meta.db_table
    with bulk.binding_cursor(prepared=True) as cursor:
        cursor.execute(
            f"""UPDATE {table} AS m
                   SET status = %b, bounced_at = %b, status_detail = d.detail,
                       bounced_soft = d.soft
                  FROM unnest(%b::bigint[], %b::text[], %b::boolean[]) AS d(id, detail, soft)
                 WHERE m.id = d.id AND m.status = %b
             RETURNING m.id, m.enrollment_id, m.tenant_id, m.to_email, m.subject,
                       m.campaign_step_id""",  # noqa: S608 - the table name is ours
            [
                MessageStatus.BOUNCED,
                now,
                ids,
                [details[pk][:500] for pk in ids],
                [pk in soft for pk in ids],
                MessageStatus.SENT,
            ],
        )
        return [_Bounced(*row) for row in cursor.fetchall()]


def _bounce_rows_portable(details: dict[int, str], soft: set[int], now: datetime) -> list[_Bounced]:
    fields = ("pk", "enrollment_id", "tenant_id", "to_email", "subject", "campaign_step_id")
    rows = [
        _Bounced(*row)
        for row in Message.objects.select_for_update()
        .filter(pk__in=details, status=MessageStatus.SENT)
        .order_by("pk")
        .values_list(*fields)
    ]
    changed = [row.pk for row in rows]
    if changed:
        why = Case(
            *[When(pk=pk, then=Value(details[pk][:500])) for pk in changed],
            default=Value(""),
            output_field=CharField(),
        )
        Message.objects.filter(pk__in=changed).update(
            status=MessageStatus.BOUNCED, bounced_at=now, status_detail=why, bounced_soft=False
        )
        Message.objects.filter(pk__in=soft & set(changed)).update(bounced_soft=True)
    return rows


@transaction.atomic
def messages_bounce_detail(*, details: dict[int, str]) -> int:
    """Say again why these bounced messages bounced ({pk: why}), when the bounce that counts for
    them was re-classified. Messages no longer bounced are left alone. Returns how many."""
    if not details:
        return 0
    why = Case(
        *[When(pk=pk, then=Value(stored(text))) for pk, text in sorted(details.items())],
        default=F("status_detail"),
        output_field=CharField(),
    )
    found = Message.objects.filter(pk__in=details, status=MessageStatus.BOUNCED)
    return found.update(status_detail=why)


@transaction.atomic
def messages_bounce_kind(*, kinds: dict[int, BounceKind]) -> None:
    """The bounce that counts for these bounced messages changed kind (re-classified): soft
    ones lift the suppression their hard bounce made, hard ones suppress the address (unless it
    is already). Their campaigns are left as they are."""
    if not kinds:
        return
    now = timezone.now()
    soft = [pk for pk, kind in kinds.items() if not kind.hard]
    hard = [pk for pk, kind in kinds.items() if kind.hard]
    Message.objects.filter(pk__in=soft, status=MessageStatus.BOUNCED).update(bounced_soft=True)
    Message.objects.filter(pk__in=hard, status=MessageStatus.BOUNCED).update(bounced_soft=False)
    suppressions_lift_for_messages(soft)
    fields = ("pk", "enrollment_id", "tenant_id", "to_email", "subject", "campaign_step_id")
    rows = Message.objects.filter(pk__in=hard, status=MessageStatus.BOUNCED).values_list(*fields)
    suppressions_add_for_bounces(
        [_cause(_Bounced(*row), kinds[row[0]], SuppressionReason.HARD_BOUNCE, now) for row in rows]
    )


@transaction.atomic
def message_unbounce(*, message: Message) -> None:
    """ "Not a bounce": the bounced message counts as sent again, and a campaign its bounce
    ended carries on where it stopped (the steps it stopped are scheduled or queued again). The
    retry a soft bounce caused is cancelled and the next step scheduled as the send had it."""
    now = timezone.now()
    soft = Message.objects.filter(
        pk=message.pk, status=MessageStatus.BOUNCED, bounced_soft=True
    ).exists()
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENT, bounced_at=None, status_detail="", bounced_soft=False
    )
    suppressions_lift_for_messages([message.pk])
    if message.enrollment_id is None:
        return
    if soft:
        _soft_retry_undo(message)
    resumed = Enrollment.objects.filter(
        pk=message.enrollment_id,
        status=EnrollmentStatus.ENDED,
        ended_reason__in=[CAMPAIGN_ENDED_BOUNCE, CAMPAIGN_ENDED_SOFT],
    ).update(status=EnrollmentStatus.ACTIVE, ended_reason="", ended_at=None)
    if resumed:
        stopped = Message.objects.filter(
            enrollment_id=message.enrollment_id,
            status=MessageStatus.CANCELLED,
            status_detail__in=[CAMPAIGN_ENDED_BOUNCE, CAMPAIGN_ENDED_SOFT],
        )
        stopped.filter(scheduled_at__gt=now).update(
            status=MessageStatus.SCHEDULED, status_detail=""
        )
        stopped.update(status=MessageStatus.QUEUED, status_detail="", next_attempt_at=now)


def _soft_retry_undo(message: Message) -> None:
    """The soft bounce of this campaign step is taken back: the retry of the step it caused,
    not sent yet, is cancelled, and the person's next step is scheduled as the send had
    scheduled it (``campaign_retry_steps`` withdrew it). Once the retry has gone out, the person
    has moved on: nothing changes."""
    from sending.services.campaigns import campaign_advance

    sent = Message.objects.select_related("campaign_step").get(pk=message.pk)
    if sent.campaign_step is None or sent.sent_at is None:
        return
    retries = Message.objects.filter(
        enrollment_id=sent.enrollment_id, campaign_step_id=sent.campaign_step_id, pk__gt=sent.pk
    )
    gone = [MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.BOUNCED]
    if not retries.pending().exists() or retries.filter(status__in=gone).exists():
        return
    retries.pending().update(
        status=MessageStatus.CANCELLED,
        hold=Hold.NONE,
        status_detail=SOFT_BOUNCE_UNDONE,
        next_attempt_at=None,
    )
    later = Message.objects.filter(
        enrollment_id=sent.enrollment_id,
        campaign_step__position__gt=sent.campaign_step.position,
    ).pending()
    if not later.exists():
        campaign_advance(message=sent, sent_at=sent.sent_at)


# --- a person's enrolment ends ----------------------------------------------------------------


def enrollment_end(*, enrollment_id: int, reason: str) -> None:
    enrollments_end(enrollment_ids={enrollment_id}, reason=reason)


def enrollments_end(*, enrollment_ids: set[int], reason: str) -> None:
    """End these people's campaigns: their mail not yet sent is cancelled (it was never sent,
    so no figure counts it), with ``reason``."""
    if not enrollment_ids:
        return
    now = timezone.now()
    Enrollment.objects.filter(pk__in=enrollment_ids, status=EnrollmentStatus.ACTIVE).update(
        status=EnrollmentStatus.ENDED, ended_reason=reason, ended_at=now
    )
    Message.objects.filter(enrollment_id__in=enrollment_ids).pending().update(
        status=MessageStatus.CANCELLED, hold=Hold.NONE, status_detail=reason, next_attempt_at=None
    )
