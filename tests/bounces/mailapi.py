"""Fakes of the Gmail API and Microsoft Graph mail endpoints, at the HTTP boundary.

Each fake holds a mailbox (messages with their labels or folder, their arrival time and raw
bytes) and answers the GET requests the reading path makes, in the shapes the providers document
and send:

- Gmail (developers.google.com/gmail/api/reference/rest/v1): ``users.getProfile``,
  ``users.history.list`` (string ids, ``messagesAdded`` rows, ``nextPageToken``, the mailbox's
  current ``historyId``, 404 for a historyId it no longer keeps), ``users.messages.list``
  (newest first, ``q`` with ``after:``/``before:`` in epoch seconds, ``includeSpamTrash``),
  ``users.messages.get`` with format minimal (``sizeEstimate`` a number, ``internalDate`` a
  string of epoch milliseconds) and raw (base64url, unpadded).
- Graph (learn.microsoft.com/graph/api/message-delta): ``/me/mailFolders/{folder}/messages/delta``
  with ``@odata.nextLink`` pages (``Prefer: odata.maxpagesize``) ending in ``@odata.deltaLink``,
  410 ``SyncStateNotFound`` for a forgotten state, ``/me/messages/{id}`` with the
  ``PidTagMessageSize`` extended property (its id answered as ``Integer 0xe08``, its value a
  string) and ``/me/messages/{id}/$value`` (the MIME). Message ids look like Exchange's, with
  ``=`` and ``-`` in them.

Anything else than GET to a mail resource is recorded in ``writes`` and refused: the tests
assert it stays empty (nothing is marked, moved or deleted). Install on ``responses`` for tests
in this process (``install``), or serve over HTTPS on loopback for a real worker (``serve``).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses

Answer = tuple[int, dict[str, str], bytes]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _json(status: int, body: Any) -> Answer:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()


@dataclass
class Stored:
    id: str
    raw: bytes
    place: str  # Gmail: the label (INBOX / SPAM); Graph: the folder (inbox / junkemail)
    received: datetime
    history: int = 0


@dataclass
class _Fake:
    base: str
    token: str
    messages: dict[str, Stored] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    writes: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[tuple[int, str]] = field(default_factory=list)  # (status, path) answered
    fetched: list[str] = field(default_factory=list)  # ids whose content was sent
    deny: bool = False  # Graph: the token lacks Mail.Read (403 ErrorAccessDenied)

    def handle(self, method: str, url: str, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        self.requests.append((method, parts.path + (f"?{parts.query}" if parts.query else "")))
        if method != "GET":
            self.writes.append((method, parts.path))
            return _json(405, {"error": {"code": 405, "message": "The fake refuses writes."}})
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self.unauthorized()
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        answer = self.get(unquote(parts.path), query, headers)
        self.statuses.append((answer[0], parts.path))
        return answer

    def unauthorized(self) -> Answer:
        raise NotImplementedError

    def get(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        raise NotImplementedError

    def install(self, mock: responses.RequestsMock | Any = responses) -> None:
        """Answer every request to ``base`` from this fake (``responses`` must be active)."""
        pattern = re.compile(re.escape(self.base.rstrip("/")) + r"/.*")

        def callback(request: Any) -> Answer:
            return self.handle(request.method, request.url, dict(request.headers))

        for method in METHODS:
            mock.add_callback(method, pattern, callback=callback)

    @contextmanager
    def serve(self, cert: tuple[Path, Path]) -> Iterator[str]:
        """Serve this fake over HTTPS on loopback (for a worker in another process); yields
        the base URL to point the setting at."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                host = f"https://localhost:{self.server.server_address[1]}"
                status, head, body = fake.handle(
                    self.command, host + self.path, {k: v for k, v in self.headers.items()}
                )
                self.send_response(status)
                for name, value in head.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        before = self.base
        self.base = f"https://localhost:{httpd.server_address[1]}"
        try:
            yield self.base
        finally:
            self.base = before
            httpd.shutdown()
            httpd.server_close()


class FakeGmail(_Fake):
    """A Gmail mailbox behind the Gmail API."""

    def __init__(self, token: str, base: str = "https://gmail.googleapis.com") -> None:
        super().__init__(base=base, token=token)
        self.history_id = 4_200_000
        self.forgotten_before = 0  # history ids below this answer 404
        self._ids = (f"18c{n:013x}" for n in itertools.count(0x5A3F10))

    def deliver(self, raw: bytes, *, label: str = "INBOX", received: datetime | None = None) -> str:
        # History ids grow, with gaps, as Gmail's do.
        self.history_id += 17
        message = Stored(next(self._ids), raw, label, received or datetime.now(UTC))
        message.history = self.history_id
        self.messages[message.id] = message
        return message.id

    def forget_history(self) -> None:
        """Gmail keeps history for about a week: every stored historyId is now too old."""
        self.forgotten_before = self.history_id + 1
        self.history_id += 17

    def unauthorized(self) -> Answer:
        return _json(
            401,
            {
                "error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials.",
                    "status": "UNAUTHENTICATED",
                }
            },
        )

    def _minimal(self, m: Stored) -> dict[str, Any]:
        return {
            "id": m.id,
            "threadId": m.id,
            "labelIds": [m.place, "UNREAD"] if m.place == "INBOX" else [m.place],
            "snippet": "",
            "sizeEstimate": len(m.raw) + 120,  # an estimate: a little over the real size
            "historyId": str(m.history),
            "internalDate": str(int(m.received.timestamp() * 1000)),
        }

    def get(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        prefix = "/gmail/v1/users/me"
        if path == f"{prefix}/profile":
            return _json(
                200,
                {
                    "emailAddress": "rep@acme.test",
                    "messagesTotal": len(self.messages),
                    "threadsTotal": len(self.messages),
                    "historyId": str(self.history_id),
                },
            )
        if path == f"{prefix}/history":
            return self._history(query)
        if path == f"{prefix}/messages":
            return self._list(query)
        if path.startswith(f"{prefix}/messages/"):
            message = self.messages.get(path.rpartition("/")[2])
            if message is None:
                return self._not_found()
            answer = self._minimal(message)
            if query.get("format") == "raw":
                self.fetched.append(message.id)
                answer["raw"] = base64.urlsafe_b64encode(message.raw).decode().rstrip("=")
            return _json(200, answer)
        return self._not_found()

    def _not_found(self) -> Answer:
        return _json(
            404,
            {
                "error": {
                    "code": 404,
                    "message": "Requested entity was not found.",
                    "errors": [
                        {
                            "message": "Requested entity was not found.",
                            "domain": "global",
                            "reason": "notFound",
                        }
                    ],
                    "status": "NOT_FOUND",
                }
            },
        )

    def _history(self, query: dict[str, str]) -> Answer:
        start = int(query["startHistoryId"])
        if start < self.forgotten_before:
            return self._not_found()
        size = int(query.get("maxResults", "100"))
        offset = int(query.get("pageToken", "0"))
        label = query.get("labelId")
        rows = sorted(
            (m for m in self.messages.values() if m.history > start),
            key=lambda m: m.history,
        )
        if label:
            rows = [m for m in rows if m.place == label]
        page = rows[offset : offset + size]
        answer: dict[str, Any] = {"historyId": str(self.history_id)}
        if page:
            answer["history"] = [
                {
                    "id": str(m.history),
                    "messages": [{"id": m.id, "threadId": m.id}],
                    "messagesAdded": [
                        {
                            "message": {
                                k: v
                                for k, v in self._minimal(m).items()
                                if k in ("id", "threadId", "labelIds")
                            }
                        }
                    ],
                }
                for m in page
            ]
        if offset + size < len(rows):
            answer["nextPageToken"] = str(offset + size)
        return _json(200, answer)

    def _list(self, query: dict[str, str]) -> Answer:
        label = query.get("labelIds", "")
        if label in ("SPAM", "TRASH") and query.get("includeSpamTrash") != "true":
            rows: list[Stored] = []
        else:
            rows = [m for m in self.messages.values() if not label or m.place == label]
        for term in query.get("q", "").split():
            name, _, value = term.partition(":")
            if name == "after":
                rows = [m for m in rows if m.received.timestamp() > int(value)]
            elif name == "before":
                rows = [m for m in rows if m.received.timestamp() < int(value)]
        rows.sort(key=lambda m: (m.received, m.history), reverse=True)  # newest first
        size = int(query.get("maxResults", "100"))
        offset = int(query.get("pageToken", "0"))
        page = rows[offset : offset + size]
        answer: dict[str, Any] = {"resultSizeEstimate": len(rows)}
        if page:
            answer["messages"] = [{"id": m.id, "threadId": m.id} for m in page]
        if offset + size < len(rows):
            answer["nextPageToken"] = str(offset + size)
        return _json(200, answer)


class FakeGraph(_Fake):
    """An Exchange Online mailbox behind Microsoft Graph."""

    def __init__(self, token: str, base: str = "https://graph.microsoft.com") -> None:
        super().__init__(base=base, token=token)
        self._states: dict[str, tuple[str, set[str], list[str]]] = {}
        self._counter = itertools.count(1)

    def deliver(
        self, raw: bytes, *, folder: str = "inbox", received: datetime | None = None
    ) -> str:
        n = next(self._counter)
        message_id = f"AAMkAGI2TG93AAA-{n:06d}_BGAAAAAAEMAAA="
        self.messages[message_id] = Stored(message_id, raw, folder, received or datetime.now(UTC))
        return message_id

    def forget_states(self) -> None:
        """Delta tokens expire: every stored link now answers 410."""
        self._states.clear()

    def unauthorized(self) -> Answer:
        return _json(
            401,
            {
                "error": {
                    "code": "InvalidAuthenticationToken",
                    "message": "Access token validation failure.",
                }
            },
        )

    def refused(self) -> Answer:
        return _json(
            403,
            {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}},
        )

    def _not_found(self) -> Answer:
        return _json(
            404,
            {
                "error": {
                    "code": "ErrorItemNotFound",
                    "message": "The specified object was not found in the store.",
                }
            },
        )

    def get(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        if self.deny:
            return self.refused()
        # The first request names the folder as /mailFolders/inbox; Graph's links as
        # /mailFolders('inbox').
        delta = re.fullmatch(
            r"/v1\.0/me/mail[Ff]olders(?:/([^/(]+)|\('([^']+)'\))/messages/delta", path
        )
        if delta:
            return self._delta((delta.group(1) or delta.group(2)).lower(), query, headers)
        found = re.fullmatch(r"/v1\.0/me/messages/([^/]+?)(/\$value)?", path)
        if found:
            message = self.messages.get(found.group(1))
            if message is None:
                return self._not_found()
            if found.group(2):
                self.fetched.append(message.id)
                return 200, {"Content-Type": "text/plain"}, message.raw
            answer: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('rep%40acme.test')/messages(receivedDateTime,singleValueExtendedProperties())/$entity",
                "@odata.etag": 'W/"CQAAABYAAAB1"',
                "id": message.id,
                "receivedDateTime": message.received.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if "Integer 0x0E08" in query.get("$expand", ""):
                answer["singleValueExtendedProperties"] = [
                    {"id": "Integer 0xe08", "value": str(len(message.raw) + 2_000)}
                ]
            return _json(200, answer)
        return self._not_found()

    def _delta(self, folder: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        size = 10
        prefer = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer", ""))
        if prefer:
            size = int(prefer.group(1))
        state = query.get("$skiptoken") or query.get("$deltatoken")
        if state:
            if state not in self._states:
                return _json(
                    410,
                    {
                        "error": {
                            "code": "SyncStateNotFound",
                            "message": "The sync state generation is not found.",
                        }
                    },
                )
            # A link can be followed again (a client that died before storing the next one).
            folder, known, pending = self._states[state]
            known = set(known)
            if query.get("$deltatoken"):
                pending = self._changes(folder, known)
        else:
            since = query.get("$filter", "").partition("receivedDateTime ge ")[2]
            floor = datetime.fromisoformat(since) if since else None
            pending = [
                m.id
                for m in sorted(self.messages.values(), key=lambda m: m.received)
                if m.place == folder and (floor is None or m.received >= floor)
            ]
            known = set()
        page, rest = pending[:size], pending[size:]
        value: list[dict[str, Any]] = []
        for message_id in page:
            message = self.messages.get(message_id)
            if message is None or message.place != folder:
                value.append({"id": message_id, "@removed": {"reason": "deleted"}})
                known.discard(message_id)
                continue
            known.add(message_id)
            value.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "@odata.etag": 'W/"CQAAABYAAAB1"',
                    "id": message_id,
                    "receivedDateTime": message.received.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
        token = f"state{next(self._counter)}"
        self._states[token] = (folder, set(known), rest)
        link = f"{self.base}/v1.0/me/mailFolders('{folder}')/messages/delta"
        answer: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
            "value": value,
        }
        if rest:
            answer["@odata.nextLink"] = f"{link}?$skiptoken={token}"
        else:
            answer["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        return _json(200, answer)

    def _changes(self, folder: str, known: set[str]) -> list[str]:
        here = {m.id for m in self.messages.values() if m.place == folder}
        added = [
            m.id
            for m in sorted(self.messages.values(), key=lambda m: m.received)
            if m.id in here - known
        ]
        return added + sorted(known - here)
