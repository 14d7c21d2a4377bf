"""Which ESP is behind a custom SMTP host, and the headers that make it echo our token back.

SendGrid and SparkPost return per-message metadata in their event webhooks when it is given at
submission time in a header they read and strip (X-SMTPAPI ``unique_args``, X-MSYS-API
``metadata``). We put our message token there, so a bounce event names the message it is about.
"""

from __future__ import annotations

import json

SENDGRID, SPARKPOST = "sendgrid", "sparkpost"
METADATA_KEY = "msc_message"


def provider_for_host(host: str) -> str:
    """The ESP behind an SMTP host, when we know it: ``sendgrid``, ``sparkpost``, else ''."""
    host = host.lower().rstrip(".")
    if host == "sendgrid.net" or host.endswith(".sendgrid.net"):
        return SENDGRID
    if host.endswith(("sparkpostmail.com", ".sparkpost.com")):
        return SPARKPOST
    return ""


def metadata_headers(host: str, token: str) -> list[tuple[str, str]]:
    provider = provider_for_host(host)
    if provider == SENDGRID:
        return [("X-SMTPAPI", json.dumps({"unique_args": {METADATA_KEY: token}}))]
    if provider == SPARKPOST:
        return [("X-MSYS-API", json.dumps({"metadata": {METADATA_KEY: token}}))]
    return []
