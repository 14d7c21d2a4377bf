"""Read a mailbox for bounces through its provider's API: the Gmail API and Microsoft Graph.

Enterprises often switch IMAP off, and a bounce filed to spam is as real as one in the inbox, so
Gmail is read through the Gmail API (labels INBOX and SPAM) and Exchange Online through Microsoft
Graph (folders Inbox and Junk Email), with the token the mailbox was connected with. IMAP stays
the fallback a tenant admin can choose (``bounces.inbox``).

The same promises as the IMAP path hold:

- Read-only by construction: the only HTTP verb used is GET, so nothing is marked, moved or
  deleted.
- Resumable: each folder has its own ``InboxCursor`` whose ``token`` is the provider's position
  (Gmail: a historyId; Graph: the next or delta link), stored only after the messages before it
  were ingested. A position the provider no longer knows (Gmail answers 404, Graph 410) starts
  the folder over from a date, as a new UIDVALIDITY does over IMAP.
- Size-capped before download: each message's size is asked for first (Gmail ``sizeEstimate``,
  Graph's ``PidTagMessageSize`` extended property) and a message over ``MSC_SCAN_MAX_BYTES`` is
  not fetched; a download that turns out larger anyway is cut off at the cap.
- Counted once: the ``bounce_counted_once`` constraint makes a re-read harmless.

Every request of a scan goes through one requests session bound to the scan's ``Deadline``
(``channels.transports.deadline``), as Graph sending does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import requests
from django.conf import settings
from django.utils import timezone

from channels.models import Channel
from channels.oauth import OAuthNotConfigured, OAuthRevoked, fresh_access_token, refresh_problem
from channels.transports.deadline import Deadline
from channels.transports.deadline import session as bounded_session
from msc_admin.crypto import SecretUnavailable

from . import services
from .models import InboxCursor

PAGE = 50  # messages asked for per listing page; the cursor is stored after each page
KEEP_GOING = "what was read so far is kept and the next scan carries on"


class ScanProblem(Exception):
    """Why a scan could not run, in words the mailbox owner can act on."""


class CursorExpired(Exception):
    """The provider no longer knows the stored position: the folder is read again from a date."""


@dataclass(frozen=True)
class Folder:
    key: str  # ``InboxCursor.folder``: Gmail's label id, Graph's well-known folder name
    name: str  # in words


@dataclass
class Page:
    """Message ids in the order to read them, and where to resume once they are ingested."""

    ids: list[str]
    resume: Callable[[], str]


@dataclass(frozen=True)
class Meta:
    size: int | None  # None: the provider did not say
    received: datetime | None


class ApiMailbox(Protocol):
    """A mailbox read through its provider's API, folder by folder, from opaque positions."""

    api: str  # in words: "the Gmail API"
    folders: tuple[Folder, ...]

    def pages(self, folder: Folder, token: str, since: datetime) -> Iterator[Page]:
        """The folder's new messages after ``token`` (all since ``since`` when it is "");
        raises ``CursorExpired`` when the provider no longer knows ``token``."""
        ...

    def meta(self, message_id: str) -> Meta | None:
        """Size and arrival time, without the content; None when the message is gone."""
        ...

    def body(self, message_id: str, limit: int) -> bytes | None:
        """The raw RFC 5322 message, or None when it is gone or longer than ``limit``."""
        ...


class _Http:
    """GET requests with the mailbox's token, within the scan's deadline, answers turned into
    words. There is no other verb: the reading paths cannot change the mailbox."""

    def __init__(self, session: requests.Session, deadline: Deadline, token: str, who: str):
        self.session = session
        self.deadline = deadline
        self.token = token
        self.who = who

    def get(
        self,
        url: str,
        params: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        limit: int | None = None,
    ) -> tuple[int, bytes]:
        """The status and body; a body over ``limit`` bytes is cut off (and answered as b"")."""
        try:
            response = self.session.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
                timeout=self.deadline.timeout(),
                allow_redirects=False,
                stream=True,
            )
            with response:
                data = bytearray()
                for chunk in response.iter_content(65536):
                    data += chunk
                    if limit is not None and len(data) > limit:
                        return response.status_code, b""
        except (requests.RequestException, OSError) as error:
            broke = (
                self.deadline.missed(self.who)
                if self.deadline.expired
                else f"The connection to {self.who} broke ({error.__class__.__name__})"
            )
            raise ScanProblem(f"{broke[:1].upper()}{broke[1:]}; {KEEP_GOING}.") from None
        status = response.status_code
        if status in (200, 404, 410) or (status == 400 and limit is None):
            return status, bytes(data)
        raise ScanProblem(self._refusal(status, bytes(data)))

    def json(self, url: str, params: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
        status, data = self.get(url, params, **kw)
        try:
            return status, _loads(data)
        except ValueError:
            raise ScanProblem(f"{self.who} answered something other than JSON.") from None

    def _refusal(self, status: int, data: bytes) -> str:
        text = self._refusal_words(status, _error_text(data))
        return text[:1].upper() + text[1:]

    def _refusal_words(self, status: int, said: str) -> str:
        if status == 401:
            return f"{self.who} did not accept the access token ({said}); reconnect the mailbox."
        if status == 403:
            return (
                f"{self.who} did not allow reading this mailbox ({said}). Reconnect the mailbox "
                "to grant reading, or ask your tenant admin to read it by IMAP instead."
            )
        if status == 429 or status >= 500:
            return f"{self.who} is busy ({status} {said}); {KEEP_GOING}."
        return f"{self.who} answered {status} ({said})."


def _loads(data: bytes) -> Any:
    return json.loads(data or b"{}")


def _error_text(data: bytes) -> str:
    """The error an API put in its JSON answer (Google's and Graph's shapes), briefly."""
    try:
        error = _loads(data).get("error", {})
    except (ValueError, AttributeError):
        return data[:100].decode("utf-8", "replace").strip() or "no reason given"
    if isinstance(error, dict):
        text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        return " ".join(text.split())[:200] or "no reason given"
    return str(error)[:200]


# --- Gmail ---------------------------------------------------------------------------------
# users.history.list from the stored historyId (messageAdded, one label at a time); a first read
# lists messages.list since a date, newest first. messages.get format=minimal gives sizeEstimate
# and internalDate, format=raw the message (base64url). Scope: any of https://mail.google.com/
# (what the mailbox was connected with, for SMTP), gmail.modify or gmail.readonly.

LISTING = "listing:"  # a first read in progress: "listing:<historyId>:<before, epoch seconds>"


class GmailMailbox:
    api: str = "the Gmail API"
    folders: tuple[Folder, ...] = (Folder("INBOX", "Inbox"), Folder("SPAM", "Spam"))

    def __init__(self, http: _Http) -> None:
        self.http = http
        self.base = settings.MSC_GMAIL_API_URL.rstrip("/") + "/gmail/v1/users/me"
        self._received: dict[str, datetime] = {}

    def pages(self, folder: Folder, token: str, since: datetime) -> Iterator[Page]:
        if token.startswith(LISTING):
            start, _, before = token.removeprefix(LISTING).partition(":")
            yield from self._listing(folder, start, since, int(before) if before else None)
        elif token:
            yield from self._history(folder, token)
        else:
            _, profile = self.http.json(f"{self.base}/profile")
            start = str(profile.get("historyId", ""))
            if not start.isdigit():
                raise ScanProblem("The Gmail API did not say where the mailbox's history is.")
            yield from self._listing(folder, start, since, None)

    def _listing(
        self, folder: Folder, start: str, since: datetime, before: int | None
    ) -> Iterator[Page]:
        # Newest first: after each page, what is left is older than its oldest message. The
        # boundary second is read again (Gmail's before: is exclusive, in seconds).
        query = f"after:{int(since.timestamp())}" + (f" before:{before + 1}" if before else "")
        params = {"labelIds": folder.key, "q": query, "maxResults": str(PAGE)}
        if folder.key == "SPAM":
            params["includeSpamTrash"] = "true"
        while True:
            _, answer = self.http.json(f"{self.base}/messages", params)
            ids = [str(m["id"]) for m in answer.get("messages") or [] if m.get("id")]
            following = answer.get("nextPageToken")
            if not following:
                yield Page(ids, lambda: start)
                return
            yield Page(ids, self._listing_resume(start, ids, before))
            params["pageToken"] = str(following)

    def _listing_resume(self, start: str, ids: list[str], before: int | None) -> Callable[[], str]:
        def resume() -> str:
            dates = [self._received[i] for i in ids if i in self._received]
            oldest = int(min(dates).timestamp()) if dates else before
            return f"{LISTING}{start}:{oldest or ''}"

        return resume

    def _history(self, folder: Folder, start: str) -> Iterator[Page]:
        params = {
            "startHistoryId": start,
            "labelId": folder.key,
            "historyTypes": "messageAdded",
            "maxResults": str(PAGE),
        }
        while True:
            status, answer = self.http.json(f"{self.base}/history", params)
            if status == 404:
                raise CursorExpired
            if status != 200:
                raise ScanProblem(f"The Gmail API refused to list the history ({status}).")
            records = answer.get("history") or []
            ids: dict[str, None] = {}
            for record in records:
                for added in record.get("messagesAdded") or []:
                    message = added.get("message") or {}
                    if message.get("id") and folder.key in message.get("labelIds", [folder.key]):
                        ids[str(message["id"])] = None
            following = answer.get("nextPageToken")
            # History ids are positions too: after this page, resume after its last record; after
            # the last page, at the mailbox's current history id.
            if following:
                last = str(records[-1]["id"]) if records else start
            else:
                last = str(answer.get("historyId") or start)
            yield Page(list(ids), lambda last=last: last)  # type: ignore[misc]
            if not following:
                return
            params["pageToken"] = str(following)

    def meta(self, message_id: str) -> Meta | None:
        url = f"{self.base}/messages/{quote(message_id, safe='')}"
        status, answer = self.http.json(url, {"format": "minimal"})
        if status != 200:
            return None
        received = None
        if str(answer.get("internalDate", "")).isdigit():
            received = datetime.fromtimestamp(int(answer["internalDate"]) / 1000, tz=UTC)
            self._received[message_id] = received
        size = answer.get("sizeEstimate")
        return Meta(int(size) if isinstance(size, int) else None, received)

    def body(self, message_id: str, limit: int) -> bytes | None:
        url = f"{self.base}/messages/{quote(message_id, safe='')}"
        # base64url in JSON: four characters for every three bytes, and a little around it.
        status, data = self.http.get(url, {"format": "raw"}, limit=limit * 4 // 3 + 4096)
        if status != 200 or not data:
            return None
        raw = str(_loads(data).get("raw", ""))
        try:
            decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            return None
        return decoded if len(decoded) <= limit else None


# --- Microsoft Graph -------------------------------------------------------------------------
# Delta queries on /me/mailFolders/{inbox,junkemail}/messages/delta: @odata.nextLink pages, a
# round ends with @odata.deltaLink; removals come as "@removed" rows. Each message's size is the
# PidTagMessageSize extended property, its MIME /me/messages/{id}/$value. Scope: Mail.Read
# (Mail.ReadBasic has no body).

SIZE_PROPERTY = "Integer 0x0E08"  # PidTagMessageSize


class GraphMailbox:
    api: str = "Microsoft Graph"
    folders: tuple[Folder, ...] = (Folder("inbox", "Inbox"), Folder("junkemail", "Junk Email"))

    def __init__(self, http: _Http) -> None:
        self.http = http
        self.root = settings.MSC_GRAPH_URL.rstrip("/") + "/"
        self.base = self.root + "v1.0/me"

    def pages(self, folder: Folder, token: str, since: datetime) -> Iterator[Page]:
        if token and not token.startswith(self.root):
            raise CursorExpired  # stored for another Graph endpoint: never sent the token there
        query = urlencode(
            {
                "$select": "receivedDateTime",
                "$filter": f"receivedDateTime ge {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
            }
        )
        url = token or f"{self.base}/mailFolders/{folder.key}/messages/delta?{query}"
        prefer = {"Prefer": f"odata.maxpagesize={PAGE}"}
        while True:
            status, answer = self.http.json(url, headers=prefer)
            if status == 410 or (status == 400 and _sync_state_gone(answer)):
                raise CursorExpired
            if status != 200:
                raise ScanProblem(f"Microsoft Graph refused to list {folder.name} ({status}).")
            ids = [
                str(item["id"])
                for item in answer.get("value") or []
                if item.get("id") and "@removed" not in item
            ]
            following = answer.get("@odata.nextLink")
            resume = str(following or answer.get("@odata.deltaLink") or url)
            if not resume.startswith(self.root):
                raise ScanProblem("Microsoft Graph answered a link to somewhere else.")
            yield Page(ids, lambda resume=resume: resume)  # type: ignore[misc]
            if not following:
                return
            url = str(following)

    def meta(self, message_id: str) -> Meta | None:
        url = f"{self.base}/messages/{quote(message_id, safe='')}"
        params = {
            "$select": "receivedDateTime",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{SIZE_PROPERTY}')",
        }
        status, answer = self.http.json(url, params)
        if status != 200:
            return None
        size = None
        for prop in answer.get("singleValueExtendedProperties") or []:
            if str(prop.get("id", "")).lower() in ("integer 0x0e08", "integer 0xe08"):
                value = str(prop.get("value", ""))
                size = int(value) if value.isdigit() else None
        received = None
        with suppress(KeyError, ValueError):
            received = datetime.fromisoformat(str(answer["receivedDateTime"]))
        return Meta(size, received)

    def body(self, message_id: str, limit: int) -> bytes | None:
        url = f"{self.base}/messages/{quote(message_id, safe='')}/$value"
        status, data = self.http.get(url, limit=limit)
        return data if status == 200 and data else None


def _sync_state_gone(answer: Any) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    code = str(error.get("code", "")).lower() if isinstance(error, dict) else ""
    return code.startswith("syncstate") or code == "resyncrequired"


MAILBOXES: dict[str, Callable[[_Http], ApiMailbox]] = {
    "google": GmailMailbox,
    "microsoft": GraphMailbox,
}


# What a grant must hold to be read through the API, per provider. Google's
# https://mail.google.com/ (asked for since the first release, for SMTP) covers the Gmail API;
# Exchange Online mailboxes connected before Mail.Read was asked for lack it until reconnected.
NEEDED_SCOPE = {"microsoft": "Mail.Read"}


def granted(channel: Channel) -> bool:
    """Whether the mailbox was connected with what reading through its API needs."""
    needed = NEEDED_SCOPE.get(channel.oauth.provider)
    return needed is None or needed in channel.oauth.scopes.split()


def folders_of(channel: Channel) -> tuple[Folder, ...]:
    mailbox = MAILBOXES.get(channel.oauth.provider)
    return mailbox.folders if mailbox is not None else ()  # type: ignore[attr-defined]


@contextmanager
def open_api_mailbox(channel: Channel, deadline: Deadline) -> Iterator[ApiMailbox]:
    """The channel's mailbox through its provider's API, with a fresh access token (the one
    the mailbox was connected with: Microsoft needs no second, IMAP, token here)."""
    make = MAILBOXES.get(channel.oauth.provider)
    if make is None:
        raise ScanProblem(f"{channel.get_kind_display()} inboxes are not read through an API.")
    try:
        token = fresh_access_token(channel.pk)
    except (OAuthRevoked, OAuthNotConfigured) as refused:
        raise ScanProblem(str(refused)) from None
    except SecretUnavailable:
        raise ScanProblem("The stored tokens cannot be decrypted; reconnect the mailbox.") from None
    except requests.RequestException as error:
        raise ScanProblem(f"{refresh_problem(error)}; will try again.") from None
    who = "the Gmail API" if channel.oauth.provider == "google" else "Microsoft Graph"
    with bounded_session(deadline) as session:
        yield make(_Http(session, deadline, token, who))


# --- the scan ----------------------------------------------------------------------------------


@dataclass
class FolderScan:
    """One folder's part of a scan, recorded on its cursor."""

    folder: Folder
    cursor: InboxCursor
    report: Any  # bounces.inbox.ScanReport
    restarted: bool = False


def read_folder(
    mailbox: ApiMailbox,
    channel: Channel,
    part: FolderScan,
    *,
    since: datetime,
    out_of_time: Callable[[], bool],
    ingest: Callable[[Channel, list[services.Incoming], Any], None],
) -> None:
    """Read one folder from its cursor, storing the position after each ingested page."""
    cursor = part.cursor
    if out_of_time():
        part.report.more = True
        return
    try:
        _read_pages(mailbox, channel, part, cursor.token, since, out_of_time, ingest)
    except CursorExpired:
        # The provider forgot our position (Gmail keeps history for about a week, Graph's
        # delta tokens expire): read the folder again from a date; nothing is counted twice.
        InboxCursor.objects.filter(pk=cursor.pk).update(token="")
        cursor.token, part.restarted = "", True
        _read_pages(mailbox, channel, part, "", since, out_of_time, ingest)


def _read_pages(
    mailbox: ApiMailbox,
    channel: Channel,
    part: FolderScan,
    token: str,
    since: datetime,
    out_of_time: Callable[[], bool],
    ingest: Callable[[Channel, list[services.Incoming], Any], None],
) -> None:
    report = part.report
    cap = settings.MSC_SCAN_MAX_BYTES
    for page in mailbox.pages(part.folder, token, since):
        items: list[services.Incoming] = []
        for message_id in page.ids:
            meta = mailbox.meta(message_id)
            if meta is None:
                continue  # gone meanwhile
            if meta.size is not None and meta.size > cap:
                report.skipped += 1
                continue
            raw = mailbox.body(message_id, cap)
            if raw is None:
                if meta.size is None:
                    report.skipped += 1  # larger than it looked: cut off at the cap
                continue
            items.append(services.Incoming(raw, meta.received or timezone.now()))
        report.read += len(items)
        if items:
            ingest(channel, items, report)
        position = page.resume()
        InboxCursor.objects.filter(pk=part.cursor.pk).update(token=position)
        part.cursor.token = position
        if out_of_time():
            report.more = True
            return
