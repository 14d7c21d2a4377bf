"""Writing to the live feed. Callers are inside the transaction of the change they report.

Entries about a person's own mail (bounced, failed, sent, throttled) are the team's activity:
admins see everyone's. Entries about a channel are addressed: each admin (and the channel's
owner) gets their own, and sees only their own, so a pause is not listed once per admin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, F, Value, When
from django.db.models.expressions import Combinable
from django.utils import timezone, translation

from accounts.models import Membership, Tenant, User
from analytics.models import FeedKind, Notification
from msc_admin import bulk
from msc_admin.stored import stored


class FeedChannel(Protocol):
    """What the feed reads of a channel (``channels.models.Channel``): whose it is."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def tenant(self) -> Tenant: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def owner(self) -> User | None: ...


# One "throttled" entry per person in this long, however many of their messages wait.
THROTTLED_QUIET = timedelta(minutes=10)


def notify(tenant_id: int, entries: Iterable[tuple[int, str, str, str]]) -> None:
    """Add feed entries about something that happened just now: (user id, kind, text, link)."""
    now = timezone.now()
    notify_at(tenant_id, [(*entry, now) for entry in entries])


def notify_at(tenant_id: int, entries: Iterable[tuple[int, str, str, str, datetime]]) -> None:
    """Add feed entries, each with the time of the event it reports: (user id, kind, text,
    link, when). A bounce read from a mailbox an hour late is listed an hour ago."""
    rows = [
        (user_id, kind, stored(text, 300), link, at) for user_id, kind, text, link, at in entries
    ]
    if not rows:
        return
    if connection.vendor == "postgresql":
        # A batch of bounces writes its entries in one short statement, one array per column;
        # a send's one entry takes the same prepared statement (no ORM on the hot path).
        fields = ("tenant_id", "user_id", "kind", "text", "link", "created_at")
        bulk.insert(Notification, fields, [(tenant_id, *row) for row in rows])
        return
    Notification.objects.bulk_create(
        Notification(
            tenant_id=tenant_id, user_id=user_id, kind=kind, text=text, link=link, created_at=at
        )
        for user_id, kind, text, link, at in rows
    )


def notify_after(
    tenant_id: int, entry: tuple[int, str, str, str, datetime], source: str
) -> tuple[str, list]:
    """``notify_at`` of one entry as ``INSERT … SELECT … FROM source`` (SQL and parameters),
    for a caller that writes the event it reports in the same statement: written only if
    ``source`` (a ``WITH`` query of that statement) has a row (PostgreSQL)."""
    user_id, kind, text, link, at = entry
    table = Notification._meta.db_table
    sql = (
        f"INSERT INTO {table} (tenant_id, user_id, kind, text, link, created_at) "  # noqa: S608
        f"SELECT %s, %s, %s, %s, %s, %s FROM {source}"
    )
    return sql, [tenant_id, user_id, kind, stored(text, 300), link, at]


def channel_users(channel: FeedChannel, *, admins: bool) -> list[User]:
    """Who hears about a channel: its owner, and the tenant's admins (always for the team
    channel, which has no owner)."""
    people: dict[int, User] = {}
    if channel.owner_id is not None and channel.owner is not None:
        people[channel.owner_id] = channel.owner
    if admins or channel.owner_id is None:
        found = Membership.objects.for_tenant(channel.tenant).admins().active()
        for membership in found.select_related("user"):
            people.setdefault(membership.user_id, membership.user)
    return list(people.values())


def channel_people(channel: FeedChannel, *, admins: bool) -> dict[int, str]:
    """``channel_users``: user id to email."""
    return {user.pk: user.email for user in channel_users(channel, admins=admins)}


def notify_each(
    tenant_id: int, kind: str, users: Iterable[User], words: Callable[[], str], link: str
) -> dict[str, list[str]]:
    """An entry for each of these people, worded by ``words()`` in their own language (their
    setting; the site's default when they chose none, as no browser is asking). Returns their
    emails by that language, for a notice sent to each in theirs."""
    entries, emails = [], defaultdict(list)
    for user in users:
        language = user.language or settings.LANGUAGE_CODE
        with translation.override(language):
            entries.append((user.pk, kind, words(), link))
        if user.email:
            emails[language].append(user.email)
    notify(tenant_id, entries)
    return {language: sorted(found) for language, found in emails.items()}


def notify_channel(
    channel: FeedChannel, text: str, link: str, *, admins: bool = False
) -> list[str]:
    """A "channel needs attention" entry for each of ``channel_people``; returns their emails."""
    people = channel_people(channel, admins=admins)
    notify(channel.tenant_id, [(pk, FeedKind.CHANNEL, text, link) for pk in people])
    return sorted(email for email in people.values() if email)


def notify_throttled(tenant_id: int, user_id: int, text: str, link: str) -> bool:
    """A "throttled" entry, unless this person had one in the last few minutes."""
    recent = Notification.objects.filter(
        tenant_id=tenant_id,
        user_id=user_id,
        kind=FeedKind.THROTTLED,
        created_at__gte=timezone.now() - THROTTLED_QUIET,
    )
    if recent.exists():
        return False
    notify(tenant_id, [(user_id, FeedKind.THROTTLED, text, link)])
    return True


__all__ = [
    "FeedKind",
    "notify",
    "notify_after",
    "notify_at",
    "notify_channel",
    "notify_each",
    "notify_throttled",
    "retell",
]


def reword(tenant_id: int, *, containing: str, reworded: Callable[[str, int], Combinable]) -> int:
    """Reword, in the database, the tenant's entries whose text contains ``containing``:
    ``reworded(field, max_length)`` is the new text. Returns how many."""
    found = Notification.objects.filter(tenant_id=tenant_id, text__contains=containing)
    return found.update(text=reworded("text", 300))


def retell(
    tenant_id: int,
    kind: str,
    entries: Iterable[tuple[str, datetime, str]],
    *,
    now_kind: str | None = None,
) -> int:
    """Say again what some entries report, when it changed (a bounce re-classified): (link,
    when, new text) for each, found by the page they link to and the time they carry (which the
    feed's index reads; an entry written before entries carried their event's time is left as
    it is); ``now_kind`` files them under another kind (a bounce that was not one). Returns how
    many."""
    wanted = {(link, at): stored(text, 300) for link, at, text in entries}
    if not wanted:
        return 0
    found = Notification.objects.filter(
        tenant_id=tenant_id,
        kind=kind,
        created_at__in={at for _, at in wanted},
        link__in={link for link, _ in wanted},
    )
    texts = Case(
        *[When(link=link, created_at=at, then=Value(text)) for (link, at), text in wanted.items()],
        default=F("text"),
        output_field=CharField(),
    )
    return found.update(text=texts, **({"kind": now_kind} if now_kind else {}))
