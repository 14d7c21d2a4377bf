"""``mime.build`` writes a send's bytes itself: exactly what the email package wrote, and still
a message any reader parses back to what was composed."""

from __future__ import annotations

import itertools
import quopri
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header, decode_header, make_header
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

import pytest
from django.utils import timezone

from sending import mime

NOW = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
MESSAGE_ID = "<msc.0123456789abcdef01234567@acme.test>"


def _by_the_email_package(
    *, from_name: str, to_email: str, subject: str, body: str, extra: list[tuple[str, str]]
) -> bytes:
    """What ``mime.build`` produced through ``MIMEText`` and ``as_bytes`` before it wrote the
    bytes itself: the reference."""
    mail = MIMEText(body, "plain", "utf-8")
    mail.replace_header("Content-Transfer-Encoding", "quoted-printable")
    mail.set_payload(quopri.encodestring(body.encode("utf-8")).decode("ascii"))
    mail["From"] = formataddr((from_name, "rep@acme.test"), charset="utf-8")
    mail["To"] = to_email
    mail["Subject"] = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    mail["Date"] = format_datetime(NOW)
    mail["Message-ID"] = MESSAGE_ID
    mail[mime.PRODUCT_HEADER] = mime.token_of(MESSAGE_ID)
    for name, value in extra:
        mail[name] = value
    return mail.as_bytes(policy=mime.SMTP_COMPAT)


SUBJECTS = [
    "Hello",
    "",
    "Two  spaces and a\ttab",
    " leading and trailing ",
    "Quick question about your Q3 roadmap and the integration we discussed last week in Berlin",
    "Réunion de lundi — ordre du jour",
    "x" * 120,
    'a;b,c (d) "e" <f> =?utf-8?q?g?=',
    "日本語の件名" * 8,
]
NAMES = ["", "Ana Rep", "Doe, John", "Zoë O'Brien", "A" * 90]
BODIES = [
    "Hi there",
    "",
    "Line one\nline two\r\nline three\rend\n",
    "From the start\n.dot line\n" + "long " * 40,
    "Olá, tudo bem? Ça va — 👋\n\nTrailing spaces   \n\ttab",
    "=3D equals = and ?= signs\n",
]
EXTRA = [[], [("List-Unsubscribe", "<mailto:unsub@acme.test?subject=" + "u" * 80 + ">")]]


@pytest.mark.parametrize(("subject", "from_name"), list(itertools.product(SUBJECTS, NAMES)))
def test_it_writes_the_bytes_the_email_package_wrote(
    subject: str, from_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    for body, extra in itertools.product(BODIES, EXTRA):
        expected = _by_the_email_package(
            from_name=from_name, to_email="p1@x.test", subject=subject, body=body, extra=extra
        )
        built = mime.build(
            message_id=MESSAGE_ID,
            from_email="rep@acme.test",
            from_name=from_name,
            to_email="p1@x.test",
            subject=subject,
            body=body,
            extra_headers=extra,
        )
        assert built == expected, (subject, from_name, body, extra)


def test_a_long_header_is_folded_and_every_line_ends_in_crlf() -> None:
    subject = "Quick question about your roadmap, " * 6
    data = mime.build(
        message_id=MESSAGE_ID,
        from_email="rep@acme.test",
        from_name="Ana Rep",
        to_email="p1@x.test",
        subject=subject,
        body="Hi\nthere\n",
    )
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    parsed = message_from_bytes(data)
    assert " ".join(str(parsed["Subject"]).split()) == " ".join(subject.split())
    assert parsed.get_payload(decode=True) == b"Hi\r\nthere\r\n"


def test_it_reads_back_as_composed() -> None:
    data = mime.build(
        message_id=MESSAGE_ID,
        from_email="rep@acme.test",
        from_name="Zoë O'Brien",
        to_email="p1@x.test",
        subject="Réunion de lundi",
        body="Olá 👋\nsecond line",
    )
    parsed = message_from_bytes(data)
    assert str(make_header(decode_header(parsed["Subject"]))) == "Réunion de lundi"
    assert str(make_header(decode_header(parsed["From"]))) == "Zoë O'Brien <rep@acme.test>"
    assert parsed["Message-ID"] == MESSAGE_ID
    assert parsed[mime.PRODUCT_HEADER] == mime.token_of(MESSAGE_ID)
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode() == "Olá 👋\r\nsecond line"


def test_a_line_break_in_an_extra_header_is_refused() -> None:
    with pytest.raises(mime.HeaderInjection):
        mime.build(
            message_id=MESSAGE_ID,
            from_email="rep@acme.test",
            from_name="",
            to_email="p1@x.test",
            subject="Hi",
            body="Hi",
            extra_headers=[("X-Campaign", "a\r\nBcc: victim@x.test")],
        )
