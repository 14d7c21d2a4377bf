"""Exchange Online / Office 365 through Microsoft Graph ``sendMail`` with the MIME message.

The MIME is ours (our Message-ID and product header ride along); Graph accepts it base64-encoded
as ``text/plain``. The only network endpoint is ``settings.MSC_GRAPH_URL``.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Hashable

import requests
from django.conf import settings

from channels.transports import (
    AUTH,
    BACKOFF,
    PERMANENT,
    QUOTA,
    RETRY,
    UNCERTAIN,
    Handover,
    SendFailure,
    names_quota,
    sessions,
)
from channels.transports.deadline import Deadline
from channels.transports.deadline import session as bounded_session


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        text = response.text[:200]
    return f"Microsoft Graph answered {response.status_code} {text}".strip()


class _Connection:
    """An HTTP session kept for a run's next sendMail (``sessions``): one TLS connection."""

    def __init__(self) -> None:
        self.deadline = Deadline()
        self._stack = contextlib.ExitStack()
        self.http = self._stack.enter_context(bounded_session(self.deadline))
        self.opened = time.monotonic()
        self.used = 0

    def close(self) -> None:
        self._stack.close()


def send_mime(
    *, token: str, data: bytes, on_handover: Handover, reuse: Hashable | None = None
) -> str:
    """POST the MIME to ``sendMail``. Inside a ``sessions.run_scope`` and with a ``reuse`` key
    (the channel), the run's messages share one HTTP connection."""
    url = settings.MSC_GRAPH_URL.rstrip("/") + "/v1.0/me/sendMail"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
    key = ("graph", reuse)
    found = sessions.take(key) if reuse is not None else None
    held = found if isinstance(found, _Connection) else None
    if held is None and reuse is not None and sessions.active():
        held = _Connection()
        sessions.keep(key, held)
    elif held is not None:
        held.deadline.restart()
    on_handover()
    try:
        with contextlib.ExitStack() as own:
            if held is not None:
                http, deadline = held.http, held.deadline
            else:
                deadline = Deadline()
                http = own.enter_context(bounded_session(deadline))
            response = http.post(
                url,
                data=base64.b64encode(data),
                headers=headers,
                timeout=deadline.timeout(),
                allow_redirects=False,
            )
            if held is not None:
                held.used += 1
    except (requests.ConnectTimeout, requests.exceptions.SSLError):
        if held is not None:
            sessions.discard(key)
        why = f": {deadline.missed('it')}" if deadline.expired else ""
        raise SendFailure(RETRY, f"Could not reach Microsoft Graph{why}.") from None
    except (requests.RequestException, OSError) as error:
        if held is not None:
            sessions.discard(key)
        broke = (
            deadline.missed("Microsoft Graph")
            if deadline.expired
            else f"The request to Microsoft Graph broke ({error.__class__.__name__})"
        )
        raise SendFailure(UNCERTAIN, f"{broke}; the message may have been sent.") from None
    status = response.status_code
    if status == 202:
        return "202 Accepted by Microsoft Graph"
    text = _error_text(response)
    retry_after = response.headers.get("Retry-After", "")
    seconds = float(retry_after) if retry_after.isdigit() else None
    if names_quota(text):  # the mailbox's submission quota: the same reply as over SMTP
        raise SendFailure(QUOTA, text, status, retry_after=seconds)
    if status in (401, 403):
        raise SendFailure(AUTH, f"Authentication unsuccessful ({text})", status)
    if status in (429, 503, 504):
        raise SendFailure(BACKOFF, text, status, retry_after=seconds)
    if status >= 500:
        raise SendFailure(RETRY, text, status)
    raise SendFailure(PERMANENT, text, status)
