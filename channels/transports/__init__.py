"""One module per way of sending. Every transport reports failure the same way: ``SendFailure``.

The ``kind`` of a failure decides what the sending pipeline does next:

- ``retry``: temporary (4xx, connection trouble before the hand-over): try again later, bounded;
- ``backoff``: the provider pushes back (421, 454, 4.7.x, HTTP 429): the whole channel waits;
- ``auth``: the credentials no longer work (535): the channel needs attention, its mail waits;
- ``permanent``: the server refused this message (5xx): failed, with the server's text;
- ``uncertain``: the connection broke after the message was handed over; it may have been
  delivered, so it is never retried automatically.
"""

from __future__ import annotations

import re
from collections.abc import Callable

RETRY = "retry"
BACKOFF = "backoff"
AUTH = "auth"
PERMANENT = "permanent"
UNCERTAIN = "uncertain"

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

# Called at the moment the message is handed to the server; it records that fact durably.
Handover = Callable[[], None]


class SendFailure(Exception):
    def __init__(
        self, kind: str, text: str, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text[:480]
        self.code = code
        self.retry_after = retry_after


def reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"[:480]


def classify(code: int, text: str) -> str:
    enhanced = _ENHANCED.search(text)
    if code in (421, 454) or (
        400 <= code < 500 and enhanced and enhanced.group(1) == "4" and enhanced.group(2) == "7"
    ):
        return BACKOFF
    if code in (530, 534, 535):
        return AUTH
    if 400 <= code < 500:
        return RETRY
    return PERMANENT


def failure_from_reply(code: int, text: bytes | str) -> SendFailure:
    described = reply_text(code, text)
    return SendFailure(classify(code, described), described, code)
