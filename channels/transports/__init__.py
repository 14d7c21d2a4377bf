"""One module per way of sending. Every transport reports failure the same way: ``SendFailure``.

The ``kind`` of a failure decides what the sending pipeline does next:

- ``retry``: temporary and about this message (a busy mailbox, a 4xx that names no limit,
  connection trouble before the hand-over): try it again later, bounded;
- ``backoff``: the provider pushes back on the whole channel's pace (421, 454, any 4.7.x, a
  450/451/452 that names a rate, "too many" or concurrency, HTTP 429/503): the whole channel
  waits, exponentially longer or as long as ``Retry-After`` says; its messages keep their place;
- ``quota``: the provider's sending quota is used up (Gmail's ``550 5.4.5`` daily limit,
  Exchange's ``SubmissionQuotaExceededException``, any reply naming a daily limit): the whole
  channel waits until the provider's window frees; its messages keep their place;
- ``auth``: the credentials no longer work (535): the channel needs attention, its mail waits;
- ``permanent``: the server refused this message (5xx: an unknown recipient, 5.1.x, 5.2.1, or
  anything else): failed, with the server's own words;
- ``uncertain``: the connection broke after the message was handed over; it may have been
  delivered, so it is never retried automatically.

Push-back never fails a message: ``backoff`` and ``quota`` hold the channel, not the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from msc_admin.stored import Sentence

RETRY = "retry"
BACKOFF = "backoff"
QUOTA = "quota"
AUTH = "auth"
PERMANENT = "permanent"
UNCERTAIN = "uncertain"

# Kinds that hold the whole channel rather than one message.
CHANNEL_LEVEL = (BACKOFF, QUOTA)

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

# Called at the moment the message is handed to the server; it records that fact durably.
Handover = Callable[[], None]

# The sender's sending quota is used up: Gmail's 5.4.5 daily limits ("Daily user sending limit
# exceeded", "Daily SMTP relay limit exceeded"), Exchange's submission quota (Online:
# "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"; on-premises:
# "550 5.2.2 Submission quota exceeded"), Exchange Online's "5.1.90 … reached your daily limit
# for message recipients", Amazon SES's "454 Throttling failure: Daily message quota exceeded".
_QUOTA = re.compile(
    r"submission ?quota ?exceeded"
    r"|\bdaily\b.{0,40}\b(limit|quota)"
    r"|\b24[- ]hours?\b.{0,40}\b(limit|quota)",
    re.IGNORECASE,
)
# A 45x that names the sender's pace (an hourly quota included): the channel waits, not the
# message.
_PACE = re.compile(
    r"\brate\b|rate[- ]?limit|\bquota|too many|concurren|throttl|limit exceeded",
    re.IGNORECASE,
)
# ... unless it is about the recipient (a mailbox receiving too fast, a full mailbox, too many
# recipients in this message): that message waits, the others go.
_ABOUT_RECIPIENT = re.compile(
    r"recipient|tried to reach|trying to contact|receiving mail|mailbox (is )?full|over quota",
    re.IGNORECASE,
)


class SendFailure(Exception):
    def __init__(
        self, kind: str, text: str, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(text)
        self.kind = kind
        # A sentence (``msc_admin.stored``) is kept whole: it is stored as its id and values.
        self.text = text if isinstance(text, Sentence) else text[:480]
        self.code = code
        self.retry_after = retry_after

    @property
    def channel_level(self) -> bool:
        return self.kind in CHANNEL_LEVEL


def reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"[:480]


def names_quota(text: str) -> bool:
    """Whether a provider's answer says the sender's sending quota is used up."""
    return bool(_QUOTA.search(text))


def classify(code: int, text: str) -> str:
    """What an SMTP reply means for the pipeline (see the module's docstring)."""
    enhanced = _ENHANCED.search(text)
    status = enhanced.group(0) if enhanced else ""
    if code in (530, 534, 535):
        return AUTH
    # Gmail says 550 5.4.5 for its daily limits, whatever words follow.
    if 400 <= code < 600 and (names_quota(text) or (code == 550 and status == "5.4.5")):
        return QUOTA
    if code in (421, 454) or (400 <= code < 500 and status.startswith("4.7.")):
        return BACKOFF
    if code in (450, 451, 452) and _PACE.search(text) and not _ABOUT_RECIPIENT.search(text):
        return BACKOFF
    if 400 <= code < 500:
        return RETRY
    return PERMANENT


def failure_from_reply(code: int, text: bytes | str) -> SendFailure:
    described = reply_text(code, text)
    return SendFailure(classify(code, described), described, code)
