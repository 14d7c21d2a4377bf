"""The MIME message we hand to a transport: our Message-ID and product header on every one."""

from __future__ import annotations

import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from django.utils import timezone

PRODUCT_HEADER = "X-MSC-Message"
_FORBIDDEN = ("\r", "\n", "\x00")


class HeaderInjection(ValueError):
    pass


def new_message_id(from_email: str) -> str:
    domain = from_email.rpartition("@")[2] or "msc-admin.invalid"
    return f"<msc.{secrets.token_hex(12)}@{domain}>"


def token_of(message_id: str) -> str:
    """The part of our Message-ID that the product header repeats."""
    return message_id.strip("<>").partition("@")[0].removeprefix("msc.")


def check_header_values(**values: str) -> None:
    """Refuse CR, LF or NUL in anything that becomes a header, before any connection opens."""
    for name, value in values.items():
        if any(c in value for c in _FORBIDDEN):
            label = name.replace("_", " ")
            raise HeaderInjection(f"The {label} contains a line break, which is not allowed.")


def build(
    *,
    message_id: str,
    from_email: str,
    from_name: str,
    to_email: str,
    subject: str,
    body: str,
) -> bytes:
    check_header_values(
        from_address=from_email, from_name=from_name, recipient=to_email, subject=subject
    )
    mail = EmailMessage(policy=SMTP)
    local, _, domain = from_email.partition("@")
    mail["From"] = Address(display_name=from_name, username=local, domain=domain)
    mail["To"] = to_email
    mail["Subject"] = subject
    mail["Date"] = format_datetime(timezone.now())
    mail["Message-ID"] = message_id
    mail[PRODUCT_HEADER] = token_of(message_id)
    mail.set_content(body, cte="quoted-printable")
    return mail.as_bytes()
