"""The demo prints mail to the terminal as people read it: a long link stays whole."""

from __future__ import annotations

import io

from django.core.mail import EmailMessage

from msc_admin.mail import EmailBackend

LINK = "http://127.0.0.1:8000/channels/identities/verify/" + "Ab3-x_9" * 20 + "/"


def test_a_long_link_prints_whole_and_copyable() -> None:
    stream = io.StringIO()
    message = EmailMessage(
        subject="Confirm your sending address for msc-admin",
        body=f"Hello Zoë,\n\nOpen this link to confirm it:\n\n{LINK}\n",
        from_email="msc-admin <no-reply@localhost>",
        to=["sales@acme.test"],
    )
    assert EmailBackend(stream=stream).send_messages([message]) == 1
    printed = stream.getvalue()
    assert f"\n{LINK}\n" in printed  # Django's console backend cut it with "=" line breaks
    assert "Subject: Confirm your sending address for msc-admin" in printed
    assert "To: sales@acme.test" in printed and "Hello Zoë" in printed
