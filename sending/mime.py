"""The MIME message we hand to a transport: our Message-ID and product header on every one."""

from __future__ import annotations

import quopri
import secrets
from collections.abc import Sequence
from email.header import Header
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr

from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

PRODUCT_HEADER = "X-MSC-Message"
# compat32 is several times faster than the modern policy and, with the checks above, as safe.
SMTP_COMPAT = compat32.clone(linesep="\r\n")
_FORBIDDEN = ("\r", "\n", "\x00")
# Whole sentences per value, so that each language names the field in its own words.
_LINE_BREAK = {
    "subject": gettext_lazy("The subject contains a line break, which is not allowed."),
    "recipient": gettext_lazy("The recipient contains a line break, which is not allowed."),
    "from_name": gettext_lazy("The from name contains a line break, which is not allowed."),
    "from_address": gettext_lazy("The from address contains a line break, which is not allowed."),
}


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
            known = _LINE_BREAK.get(name)
            text = (
                str(known)
                if known is not None
                else gettext("The %(header)s header contains a line break, which is not allowed.")
                % {"header": name}
            )
            raise HeaderInjection(text)


def build(
    *,
    message_id: str,
    from_email: str,
    from_name: str,
    to_email: str,
    subject: str,
    body: str,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """RFC 5322 bytes with CRLF line ends: plain text, UTF-8, quoted-printable."""
    check_header_values(
        from_address=from_email, from_name=from_name, recipient=to_email, subject=subject
    )
    mail = MIMEText(body, "plain", "utf-8")
    mail.replace_header("Content-Transfer-Encoding", "quoted-printable")
    mail.set_payload(quopri.encodestring(body.encode("utf-8")).decode("ascii"))
    mail["From"] = formataddr((from_name, from_email), charset="utf-8")
    mail["To"] = to_email
    mail["Subject"] = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    mail["Date"] = format_datetime(timezone.now())
    mail["Message-ID"] = message_id
    mail[PRODUCT_HEADER] = token_of(message_id)
    for name, value in extra_headers:
        check_header_values(**{name: value})
        mail[name] = value
    return mail.as_bytes(policy=SMTP_COMPAT)
