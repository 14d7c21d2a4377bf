"""Exchange on-premises: the Inbox and Junk Email read through EWS, as one read-only folder for
the inbox scanner (``bounces.inbox.Mailbox``).

Read-only: ``FindItem`` lists ids, ``DateTimeReceived`` and ``Size``; ``GetItem`` fetches the
MIME of the items small enough (the scanner skips the others by their size before anything is
fetched). Nothing is marked read, moved or deleted.

The cursor is a time: a message's "UID" is its ``DateTimeReceived`` in epoch seconds times 1000 plus
its rank among the messages received in that same second (EWS gives whole seconds), so the
scanner's integer cursor moves forward as with IMAP. A scan lists what was received from the
cursor's second on; that second is read again only when more messages carry it now than had
been read, which the ``bounce_counted_once`` constraint makes harmless. Both folders share the
one cursor: a bounce filed as junk is found as one in the Inbox would be.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from exchangelib.folders import Inbox, JunkEmail

from channels.transports import SendFailure
from channels.transports import exchange as ews_transport
from channels.transports.deadline import Deadline

if TYPE_CHECKING:
    from channels.models import Channel

# The scanner's ``uidvalidity`` for this kind of cursor (time-based, not IMAP UIDs).
TIME_CURSOR = 1
RANKS = 1000  # messages told apart within one second; more than that share the last rank


@dataclass(frozen=True)
class _Listed:
    id: str
    changekey: str
    size: int
    received: datetime


class EwsMailbox:
    """Inbox and Junk Email as one folder (``bounces.inbox.Mailbox``)."""

    uidvalidity = TIME_CURSOR

    def __init__(self, ews: ews_transport.Ews) -> None:
        self.ews = ews
        self._listed: dict[int, _Listed] = {}

    def new_uids(self, after: int, since: datetime) -> list[int]:
        boundary = after // RANKS
        read_in_boundary = after % RANKS + 1 if after else 0
        start = datetime.fromtimestamp(boundary, UTC) if after else since
        query = (
            self.ews.folders(Inbox, JunkEmail)
            .filter(datetime_received__gte=start)
            .only("datetime_received", "size")
        )
        by_second: dict[int, list[_Listed]] = {}
        for item in _guarded(self.ews, lambda: list(query)):
            if isinstance(item, Exception) or item.datetime_received is None:
                continue
            second = int(item.datetime_received.timestamp())
            received = datetime.fromtimestamp(second, UTC)
            listed = _Listed(item.id, item.changekey, int(item.size or 0), received)
            by_second.setdefault(second, []).append(listed)
        uids: list[int] = []
        for second, items in sorted(by_second.items()):
            if after and second == boundary and len(items) <= read_in_boundary:
                continue  # nothing new received in the second the last scan ended in
            for rank, listed in enumerate(sorted(items, key=lambda i: i.id)):
                uid = second * RANKS + min(rank, RANKS - 1)
                self._listed.setdefault(uid, listed)
                uids.append(uid)
        return sorted(set(uids))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        return {uid: self._listed[uid].size for uid in uids if uid in self._listed}

    def bodies(self, uids: list[int]) -> dict[int, tuple[bytes, datetime | None]]:
        wanted = [(uid, self._listed[uid]) for uid in uids if uid in self._listed]
        ids = [(listed.id, listed.changekey) for _, listed in wanted]
        account = self.ews.account
        inbox = self.ews.folder(Inbox)  # validates the fields asked without asking the server
        fetched = _guarded(
            self.ews,
            lambda: list(account.fetch(ids=ids, folder=inbox, only_fields=["mime_content"])),
        )
        found: dict[int, tuple[bytes, datetime | None]] = {}
        for (uid, listed), item in zip(wanted, fetched, strict=False):
            if isinstance(item, Exception) or not item.mime_content:
                continue  # deleted meanwhile
            found[uid] = (bytes(item.mime_content), listed.received)
        return found


def _guarded(ews: ews_transport.Ews, read: Any) -> Any:
    from bounces.inbox import ScanProblem

    try:
        return read()
    except ews_transport.EXPECTED as error:
        problem = ews_transport.explain(error, ews.call)
        raise ScanProblem(
            f"{problem.text} What was read so far is kept and the next scan carries on."
        ) from None


@contextmanager
def open_ews_mailbox(channel: Channel, deadline: Deadline) -> Iterator[EwsMailbox]:
    from bounces.inbox import ScanProblem
    from channels.kinds.base import stored_password

    try:
        password = stored_password(channel)
    except SendFailure as failure:
        raise ScanProblem(failure.text) from None
    try:
        with ews_transport.conversation(channel.exchange, password, deadline) as ews:
            yield EwsMailbox(ews)
    except ews_transport.EwsProblem as problem:
        raise ScanProblem(problem.text) from None
