"""The demo's mail backend: each message printed to the terminal as a person reads it.

Django's console backend prints the MIME source, where a long line (a signed link) is cut by
quoted-printable soft line breaks ("=" at each line end): a link copied from the terminal then
fails. This prints the headers people read and the text body as written, so the identity
confirmation and invitation links can be copied as they are."""

from __future__ import annotations

from django.core.mail import EmailMessage
from django.core.mail.backends import console


class EmailBackend(console.EmailBackend):
    def write_message(self, message: EmailMessage) -> None:
        head = [
            f"From: {message.from_email}",
            f"To: {', '.join(message.to)}",
            f"Subject: {message.subject}",
        ]
        self.stream.write("\n".join(head) + "\n\n" + str(message.body).rstrip() + "\n")
        self.stream.write("-" * 79 + "\n")
