"""Read bounces from the sender's own inbox: Gmail and Exchange Online.

Each is read through its provider's API by default (``bounces.reading``: the Gmail API's Inbox
and Spam, Microsoft Graph's Inbox and Junk Email), or by IMAP with XOAUTH2 where the tenant
admin chose it (``OAuthConfig.reading``): this module is the IMAP path and the scan around both.

The scan never changes the mailbox. The folder is opened with EXAMINE (read-only) and bodies are
fetched with ``BODY.PEEK[]``, so no flag is set, and nothing is moved or deleted. Where it stopped
is kept per channel and folder (``InboxCursor``: UIDVALIDITY and the last UID) and moved forward
only after each batch of messages has been ingested, so a scan that dies part-way resumes where
it left off and at worst reads a batch again, which the ``bounce_counted_once`` constraint makes
harmless.
Messages over ``MSC_SCAN_MAX_BYTES`` are skipped by their size before anything is fetched.
Complaints (ARF reports), replies to our messages and auto-replies are read in the same pass
(``bounces.responses``).

Which kinds are read, and at which IMAP server, is the kind's (``kind.scans_inbox``,
``kind.imap_address()``). Exchange on-premises is read through EWS instead (``kind.ews_inbox``,
``bounces.ews``), its Inbox and Junk Email under the one cursor.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import requests
from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, F, OuterRef
from django.db.models.functions import Greatest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, gettext_noop, ngettext_lazy

from channels import kinds
from channels.kinds.config import Reading
from channels.models import Channel, ChannelStatus
from channels.oauth import (
    IMAP,
    OAuthNotConfigured,
    OAuthRevoked,
    fresh_access_token,
    refresh_problem,
)
from channels.transports.deadline import Deadline, DeadlineSocket
from channels.transports.smtp import XOAuth2, tls_context
from msc_admin import enqueue
from msc_admin.crypto import SecretUnavailable
from msc_admin.stored import sentence, stored

from . import reading, services
from .models import BounceSource, InboxCursor, ResponseKind
from .reading import Folder, ScanProblem

log = logging.getLogger(__name__)

BATCH = 50  # messages per FETCH; the cursor is committed after each batch
FETCH_BYTES = 16_000_000  # at most this much message data asked for in one FETCH
# The whole IMAP conversation keeps to one MSC_OUTBOUND_DEADLINE; no new batch starts once this
# share of it is gone, so the last one has time to finish. A longer backlog continues at the
# next scan.
BUDGET_SHARE = 0.5
# The first scan of a mailbox reads this far back (bounces older than this match nothing).
FIRST_SCAN_BACK = services.RECIPIENT_WINDOW

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')


@dataclass
class ScanReport:
    read: int = 0
    found: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    more: bool = False  # stopped at the time budget with messages left to read
    complaints: int = 0
    replies: int = 0
    auto_replies: int = 0
    ok: bool = True
    problem: str = ""

    def add(self, other: ScanReport) -> None:
        """Count another folder's part of the scan in."""
        counts = ("read", "found", "duplicates", "skipped", "failed")
        for name in (*counts, "complaints", "replies", "auto_replies"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.more = self.more or other.more

    @property
    def summary(self) -> str:
        """What the scan did, as a sentence (``msc_admin.stored``): stored on the inbox's
        cursors and read in the reader's language."""
        if not self.ok:
            return self.problem
        cap = filesizeformat(settings.MSC_SCAN_MAX_BYTES)
        counts = (
            (self.read, ngettext_lazy("%(n)s new message read", "%(n)s new messages read", "n")),
            (self.found, ngettext_lazy("%(n)s bounce recorded", "%(n)s bounces recorded", "n")),
            (self.complaints, ngettext_lazy("%(n)s complaint", "%(n)s complaints", "n")),
            (self.replies, ngettext_lazy("%(n)s reply", "%(n)s replies", "n")),
            (self.auto_replies, ngettext_lazy("%(n)s auto-reply", "%(n)s auto-replies", "n")),
            (self.duplicates, ngettext_lazy("%(n)s already counted", "%(n)s already counted", "n")),
            (
                self.skipped,
                ngettext_lazy("%(n)s over %(cap)s skipped", "%(n)s over %(cap)s skipped", "n"),
            ),
            (
                self.failed,
                ngettext_lazy("%(n)s could not be processed", "%(n)s could not be processed", "n"),
            ),
        )
        parts = [
            sentence(words, n=n, **({"cap": cap} if words is counts[6][1] else {}))
            for i, (n, words) in enumerate(counts)
            if n or i < 2  # messages read and bounces recorded are always said
        ]
        if self.more:
            return sentence(
                gettext_noop("%(parts)s. More to read: the next scan carries on."), parts=parts
            )
        return sentence(gettext_noop("%(parts)s."), parts=parts)


def is_scanned(channel: Channel) -> bool:
    return channel.kind_spec.scans_inbox


def imap_address(channel: Channel) -> tuple[str, int]:
    return channel.kind_spec.imap_address()


def _lock_key(channel_id: int) -> str:
    return f"inbox-scan:{channel_id}"


def is_running(channel_id: int) -> bool:
    return cache.get(_lock_key(channel_id)) is not None


IMAP_FOLDERS = (Folder("INBOX", "Inbox"),)
# Exchange on-premises: both folders under the one cursor (``bounces.ews``).
EWS_FOLDERS = (Folder("INBOX", "Inbox and Junk Email"),)


def through_api(channel: Channel) -> bool:
    """Read through the provider's API (the default where the kind has one), not by IMAP.
    The embedded demo's mailboxes are local folders, read as IMAP ones."""
    if not channel.kind_spec.reading_api:
        return False
    choice = channel.oauth.reading
    if choice == Reading.IMAP:
        return False
    if not choice and not reading.granted(channel):
        return False  # connected before reading through the API was asked for: IMAP, as then
    return local_mailbox(channel.account_email) is None


def folders(channel: Channel) -> tuple[Folder, ...]:
    """The folders a scan of the channel reads, in order."""
    if through_api(channel):
        return reading.folders_of(channel)
    return EWS_FOLDERS if channel.kind_spec.ews_inbox else IMAP_FOLDERS


# The folders' names in words people read (``Folder.name`` stays the English key).
FOLDER_NAMES = {
    "Inbox": gettext_lazy("Inbox"),
    "Spam": gettext_lazy("Spam"),
    "Junk Email": gettext_lazy("Junk Email"),
    "Inbox and Junk Email": gettext_lazy("Inbox and Junk Email"),
}


def folder_name(folder: Folder) -> str:
    """The folder's name in the active language."""
    return str(FOLDER_NAMES.get(folder.name, folder.name))


def path_words(channel: Channel) -> str:
    """How the mailbox is read, in words: "Read through the Gmail API: Inbox and Spam"."""
    names = [folder_name(folder) for folder in folders(channel)]
    folders_words = (
        gettext("%(first)s and %(second)s") % {"first": names[0], "second": names[1]}
        if len(names) == 2
        else ", ".join(names)
    )
    values = {"folders": folders_words, "api": channel.kind_spec.reading_api}
    if channel.kind_spec.ews_inbox and local_mailbox(channel.account_email) is None:
        return gettext("Read through EWS: %(folders)s") % values
    if through_api(channel):
        return gettext("Read through %(api)s: %(folders)s") % values
    if local_mailbox(channel.account_email) is not None:
        return gettext("Read from the demo's mailbox: %(folders)s") % values
    return gettext("Read by IMAP: %(folders)s") % values


def folder_cursors(channel: Channel) -> list[tuple[Folder, InboxCursor | None]]:
    """Each folder the channel is read from, with its cursor (None before its first scan)."""
    found = {c.folder: c for c in channel.inbox_cursors.all()}
    return [(folder, found.get(folder.key)) for folder in folders(channel)]


def scan(channel_id: int, *, time_budget: float | None = None) -> ScanReport:
    """Read the channel's inbox from where the last scan stopped and ingest what bounced.

    No new batch starts after ``time_budget`` seconds (default: half the deadline)."""
    channel = Channel.objects.select_related("tenant").get(pk=channel_id)
    if not is_scanned(channel):
        said = sentence(
            gettext_noop("%(kind)s inboxes are not read."), kind=channel.get_kind_display()
        )
        return ScanReport(ok=False, problem=said)
    key = _lock_key(channel_id)
    if not cache.add(key, "1", timeout=settings.CELERY_TASK_TIME_LIMIT):
        return ScanReport(
            ok=False, problem=gettext_noop("A scan of this inbox is already running.")
        )
    path = folders(channel)
    cursors = [
        InboxCursor.objects.get_or_create(
            channel=channel, folder=folder.key, defaults={"tenant": channel.tenant}
        )[0]
        for folder in path
    ]
    report = ScanReport()
    recorded: set[int] = set()
    try:
        if through_api(channel):
            _scan_api(channel, list(zip(path, cursors, strict=True)), report, time_budget, recorded)
        else:
            _scan(channel, cursors[0], report, time_budget)
    except ScanProblem as problem:
        report.ok, report.problem = False, str(problem)
    finally:
        cache.delete(key)
    for cursor in cursors:
        if cursor.pk not in recorded:
            _record(cursor, report)
    return report


def _record(cursor: InboxCursor, report: ScanReport) -> None:
    InboxCursor.objects.filter(pk=cursor.pk).update(
        scanned_at=timezone.now(),
        ok=report.ok,
        message=stored(report.summary),  # read in the reader's language
        read=report.read,
        found=report.found,
        skipped=report.skipped,
    )


def _scan_api(
    channel: Channel,
    path: list[tuple[Folder, InboxCursor]],
    report: ScanReport,
    budget: float | None,
    recorded: set[int],
) -> None:
    """Each folder through the provider's API, under one deadline; each folder's result is
    recorded on its cursor as soon as it is read."""
    deadline = Deadline()
    limit = deadline.seconds * BUDGET_SHARE if budget is None else budget

    def out_of_time() -> bool:
        return deadline.elapsed() > limit

    with reading.open_api_mailbox(channel, deadline) as mailbox:
        for folder, cursor in path:
            part = reading.FolderScan(folder, cursor, ScanReport())
            reading.read_folder(
                mailbox,
                channel,
                part,
                since=channel.created_at - FIRST_SCAN_BACK,
                out_of_time=out_of_time,
                ingest=_ingest,
            )
            report.add(part.report)
            _record(cursor, part.report)
            recorded.add(cursor.pk)


def _scan(channel: Channel, cursor: InboxCursor, report: ScanReport, budget: float | None) -> None:
    deadline = Deadline()
    if budget is None:
        budget = deadline.seconds * BUDGET_SHARE
    with open_mailbox(channel, cursor.folder, deadline) as mailbox:
        uidvalidity = mailbox.uidvalidity
        if cursor.uidvalidity != uidvalidity:
            # First scan, or the server renumbered the folder: read it again from a date.
            InboxCursor.objects.filter(pk=cursor.pk).update(uidvalidity=uidvalidity, last_uid=0)
            cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
        uids = mailbox.new_uids(cursor.last_uid, since=channel.created_at - FIRST_SCAN_BACK)
        for start in range(0, len(uids), BATCH):
            if deadline.elapsed() > budget:
                report.more = True
                return
            batch = uids[start : start + BATCH]
            _read_batch(mailbox, channel, batch, report)
            InboxCursor.objects.filter(pk=cursor.pk, uidvalidity=uidvalidity).update(
                last_uid=Greatest(F("last_uid"), batch[-1])
            )


class Mailbox(Protocol):
    """One folder, read-only: what the scanner needs from IMAP (or the demo's local folder)."""

    uidvalidity: int

    def new_uids(self, after: int, since: datetime) -> list[int]: ...

    def sizes(self, uids: list[int]) -> dict[int, int]: ...

    def bodies(self, uids: list[int]) -> dict[int, tuple[bytes, datetime | None]]: ...


class ImapMailbox:
    def __init__(self, imap: imaplib.IMAP4, folder: str) -> None:
        self.imap = imap
        self.uidvalidity = _examine(imap, folder)

    def new_uids(self, after: int, since: datetime) -> list[int]:
        return _new_uids(self.imap, after, since)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for uid, (meta, _) in _fetch(self.imap, uids, "(RFC822.SIZE)").items():
            size = _SIZE.search(meta)
            if size:
                found[uid] = int(size.group(1))
        return found

    def bodies(self, uids: list[int]) -> dict[int, tuple[bytes, datetime | None]]:
        fetched = _fetch(self.imap, uids, "(INTERNALDATE BODY.PEEK[])")
        return {
            uid: (raw, _internal_date(meta))
            for uid, (meta, raw) in fetched.items()
            if raw is not None
        }


class LocalMailbox:
    """The embedded demo's stand-in for a mailbox: ``<MSC_DEMO_MAILBOXES>/<address>/<uid>.eml``,
    written by the demo SMTP relay when a demo recipient bounces."""

    uidvalidity = 1

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _files(self) -> dict[int, Path]:
        if not self.folder.is_dir():
            return {}
        return {int(p.stem): p for p in self.folder.glob("*.eml") if p.stem.isdigit()}

    def new_uids(self, after: int, since: datetime) -> list[int]:
        return sorted(uid for uid in self._files() if uid > after)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        files = self._files()
        return {uid: files[uid].stat().st_size for uid in uids if uid in files}

    def bodies(self, uids: list[int]) -> dict[int, tuple[bytes, datetime | None]]:
        files = self._files()
        found: dict[int, tuple[bytes, datetime | None]] = {}
        for uid in uids:
            if uid in files:
                stamp = datetime.fromtimestamp(files[uid].stat().st_mtime, tz=UTC)
                found[uid] = (files[uid].read_bytes(), stamp)
        return found


def local_mailbox(address: str) -> LocalMailbox | None:
    root = settings.MSC_DEMO_MAILBOXES
    if not root or not address:
        return None
    safe = address.lower().replace("/", "_")
    return LocalMailbox(Path(root) / safe)


@contextmanager
def open_mailbox(channel: Channel, folder: str, deadline: Deadline) -> Iterator[Mailbox]:
    local = local_mailbox(channel.account_email)
    if local is not None:
        yield local
        return
    # Exchange on-premises: Inbox and Junk Email through EWS with the stored password, under
    # this one cursor (``bounces.ews``), not IMAP.
    if channel.kind_spec.ews_inbox:
        from bounces.ews import open_ews_mailbox

        with open_ews_mailbox(channel, deadline) as mailbox:
            yield mailbox
        return
    with _session(channel, deadline) as imap:
        yield ImapMailbox(imap, folder)


class _BoundedIMAP(imaplib.IMAP4_SSL):
    """IMAP over TLS whose connect, every write and every read keep to the scan's deadline."""

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext, deadline: Deadline
    ) -> None:
        self.deadline = deadline
        super().__init__(host, port, ssl_context=context, timeout=deadline.per_read)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        # The connect timeout stays on the socket for the TLS handshake.
        sock = super()._create_socket(self.deadline.timeout())  # type: ignore[misc]
        return DeadlineSocket(sock, self.deadline)  # type: ignore[return-value]


@contextmanager
def _session(channel: Channel, deadline: Deadline) -> Iterator[imaplib.IMAP4]:
    host, port = imap_address(channel)
    try:
        token = fresh_access_token(channel.pk, IMAP)
    except (OAuthRevoked, OAuthNotConfigured) as refused:
        raise ScanProblem(str(refused)) from None
    except SecretUnavailable:
        raise ScanProblem("The stored tokens cannot be decrypted; reconnect the mailbox.") from None
    except requests.RequestException as error:
        raise ScanProblem(f"{refresh_problem(error)}; will try again.") from None
    try:
        imap = _BoundedIMAP(host, port, context=tls_context(), deadline=deadline)
    except (OSError, ssl.SSLError, imaplib.IMAP4.error) as error:
        why = (
            deadline.missed(host)
            if deadline.expired
            else f"Could not reach {host}:{port} ({error.__class__.__name__})"
        )
        raise ScanProblem(f"{why}; will try again.") from None
    try:
        sasl = XOAuth2(channel.account_email, token)
        try:
            imap.authenticate("XOAUTH2", lambda challenge: sasl.initial_response().encode())
        except imaplib.IMAP4.error as error:
            if deadline.expired:
                raise ScanProblem(f"{deadline.missed(host)}; will try again.") from None
            raise ScanProblem(f"The mailbox refused the sign-in: {_text(error)}") from None
        yield imap
    except (OSError, imaplib.IMAP4.abort) as error:
        broke = (
            deadline.missed(host)
            if deadline.expired
            else f"The connection to {host} broke ({error.__class__.__name__})"
        )
        raise ScanProblem(
            f"{broke}; what was read so far is kept and the next scan carries on."
        ) from None
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def _text(error: Exception) -> str:
    text = str(error)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return " ".join(text.split())[:300]


def _examine(imap: imaplib.IMAP4, folder: str) -> int:
    """Open the folder read-only (EXAMINE) and return its UIDVALIDITY."""
    typ, _ = imap.select(folder, readonly=True)
    if typ != "OK":
        raise ScanProblem(f"The folder {folder} cannot be opened.")
    values = imap.untagged_responses.get("UIDVALIDITY") or [b"0"]
    last = values[-1]
    return int(last) if isinstance(last, bytes) and last.isdigit() else 0


def _new_uids(imap: imaplib.IMAP4, after: int, since: datetime) -> list[int]:
    if after:
        typ, data = imap.uid("SEARCH", None, f"UID {after + 1}:*")  # type: ignore[arg-type]
    else:
        day = since.strftime("%d-%b-%Y")
        typ, data = imap.uid("SEARCH", None, "SINCE", day)  # type: ignore[arg-type]
    if typ != "OK":
        raise ScanProblem("The server refused to list the folder.")
    found = {int(uid) for chunk in data if isinstance(chunk, bytes) for uid in chunk.split()}
    # "n:*" always includes the highest UID, even one already read: keep only new ones.
    return sorted(uid for uid in found if uid > after)


def _fetch(
    imap: imaplib.IMAP4, uids: list[int], items: str
) -> dict[int, tuple[bytes, bytes | None]]:
    """UID FETCH, answered as {uid: (metadata, literal or None)}."""
    typ, data = imap.uid("FETCH", ",".join(map(str, uids)), items)
    if typ != "OK":
        raise ScanProblem("The server refused to fetch messages.")
    answers: dict[int, tuple[bytes, bytes | None]] = {}
    index = 0
    while index < len(data):
        part = data[index]
        index += 1
        if isinstance(part, tuple):
            meta, body = part[0], part[1]
            # Some servers put UID after the literal: it arrives as the next item.
            tail = data[index] if index < len(data) else None
            if isinstance(tail, bytes):
                meta += tail
                index += 1
        elif isinstance(part, bytes):
            meta, body = part, None
        else:
            continue
        found = _UID.search(meta)
        if found:
            answers[int(found.group(1))] = (meta, body)
    return answers


def _internal_date(meta: bytes) -> datetime | None:
    found = _INTERNALDATE.search(meta)
    if not found:
        return None
    try:
        return datetime.strptime(found.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def _read_batch(mailbox: Mailbox, channel: Channel, batch: list[int], report: ScanReport) -> None:
    sizes = mailbox.sizes(batch)
    wanted: list[int] = []
    for uid in batch:
        if uid not in sizes:
            continue  # expunged meanwhile
        if sizes[uid] > settings.MSC_SCAN_MAX_BYTES:
            report.skipped += 1
        else:
            wanted.append(uid)
    for group in _by_volume(wanted, sizes):
        bodies = mailbox.bodies(group)
        items = [
            services.Incoming(raw, received or timezone.now())
            for uid in group
            if uid in bodies
            for raw, received in [bodies[uid]]
        ]
        report.read += len(items)
        _ingest(channel, items, report)


def _by_volume(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    group: list[int] = []
    volume = 0
    for uid in uids:
        if group and volume + sizes[uid] > FETCH_BYTES:
            yield group
            group, volume = [], 0
        group.append(uid)
        volume += sizes[uid]
    if group:
        yield group


def _ingest(channel: Channel, items: list[services.Incoming], report: ScanReport) -> None:
    try:
        done = services.ingest_many(
            tenant=channel.tenant, items=items, source=BounceSource.INBOX, channel=channel
        )
    except Exception:
        # A batch that cannot be recorded is tried one message at a time, so that one bad
        # message does not hold back the rest; it stays in the mailbox either way.
        log.exception("Batch ingest failed for channel %s; retrying one by one", channel.pk)
        done = []
        for item in items:
            try:
                done += services.ingest_many(
                    tenant=channel.tenant, items=[item], source=BounceSource.INBOX, channel=channel
                )
            except Exception:
                log.exception("Could not ingest a message of channel %s", channel.pk)
                report.failed += 1
    report.found += sum(len(d.created) for d in done)
    report.duplicates += sum(d.duplicates for d in done)
    kinds = [event.kind for d in done for event in d.responses]
    report.complaints += kinds.count(ResponseKind.COMPLAINT)
    report.replies += kinds.count(ResponseKind.REPLY)
    report.auto_replies += kinds.count(ResponseKind.AUTO_REPLY)


def due_channels(now: datetime | None = None) -> list[int]:
    """Active channels of the kinds whose inbox is read (Gmail, Exchange Online and
    on-premises) whose last scan is older than the interval."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.MSC_SCAN_EVERY_SECONDS)
    scanned = kinds.values(scans_inbox=True)
    channels = Channel.objects.filter(kind__in=scanned, status=ChannelStatus.ACTIVE)
    fresh = InboxCursor.objects.filter(channel=OuterRef("pk"), scanned_at__gte=stale)
    due = channels.exclude(Exists(fresh))
    return list(due.order_by("pk").values_list("pk", flat=True))


def dispatch_scans() -> int:
    from bounces import tasks

    due = due_channels()
    for pk in due:
        if not is_running(pk):
            enqueue.after_commit(tasks.scan_inbox, pk)
    return len(due)
