"""A local SMTP relay for the embedded demo (bin/run starts it): STARTTLS and AUTH like a real
ESP, so "Test connection" and "Send test email" on the demo's custom SMTP channels work.

Mail it accepts is written to var/demo-smtp/mail/ as .eml files; nothing leaves the machine.
Mail to a dead demo address (``former.*@*.example``, ``full.*@*.example``) is bounced back to
the sender's local mailbox, where the inbox scanner finds it (see ``bounces.demo``).
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounces.demo import dead_address, deliver_local, dsn
from channels.demo import DEMO_OAUTH_TOKEN, DEMO_PASSWORD, DEMO_USERNAME
from msc_admin.devtls import make_certificates

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ModuleNotFoundError as missing:  # production installs requirements/base.txt only
    raise ModuleNotFoundError(
        "The demo SMTP relay needs aiosmtpd, which only the demo and the tests install: "
        "pip install -r requirements/demo.txt (bin/run does)."
    ) from missing


def demo_dir() -> Path:
    return Path(settings.VAR_DIR) / "demo-smtp"


class _Store:
    """Keeps what it accepts; for a dead demo address it then bounces, like a real relay: a DSN
    to the sender's local mailbox (``MSC_DEMO_MAILBOXES``), which the inbox scanner reads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        name = f"{time.time_ns()}.eml"
        (self.folder / name).write_bytes(data)
        mailboxes = settings.MSC_DEMO_MAILBOXES
        for recipient in envelope.rcpt_tos:
            refused = dead_address(recipient)
            if refused and mailboxes and envelope.mail_from:
                status, diagnostic = refused
                report = dsn(data, recipient=recipient, status=status, diagnostic=diagnostic)
                deliver_local(mailboxes, envelope.mail_from, report)
        return "250 2.0.0 Ok: queued as " + name

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        """Demo Gmail channels send here too, with their placeholder token."""
        try:
            raw = base64.b64decode(args[1]).decode()
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        token = raw.partition("auth=Bearer ")[2].split("\x01", 1)[0]
        return AuthResult(success=token == DEMO_OAUTH_TOKEN, handled=False)


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login.decode() == DEMO_USERNAME
        and data.password.decode() == DEMO_PASSWORD
    )
    return AuthResult(success=ok, handled=False)


class _NoLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs "Session.login_data is deprecated" at every successful AUTH from its
    own code, whatever API the server uses (aio-libs/aiosmtpd#347): the relay uses the current
    one (an ``authenticator`` returning ``AuthResult``) and never reads ``login_data``, so that
    line says nothing and is dropped; every other line of aiosmtpd's log stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Session.login_data is deprecated" not in record.getMessage()


def _quiet_aiosmtpd() -> None:
    log = logging.getLogger("mail.log")
    if not any(isinstance(f, _NoLoginDataNotice) for f in log.filters):
        log.addFilter(_NoLoginDataNotice())


def start_relay(folder: Path, port: int) -> Controller:
    """Start the relay on 127.0.0.1:port with its certificates in ``folder`` (made if missing)."""
    _quiet_aiosmtpd()
    (folder / "mail").mkdir(parents=True, exist_ok=True)
    if not (folder / "ca.pem").exists():
        make_certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(folder / "trusted.pem"), str(folder / "trusted.key"))
    controller = Controller(
        _Store(folder / "mail"),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    return controller


class Command(BaseCommand):
    help = "Run the demo's local SMTP relay (STARTTLS + AUTH) on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=2525)

    def handle(self, *args: Any, port: int = 2525, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("The demo SMTP server runs only with DEBUG=true.")
        folder = demo_dir()
        controller = start_relay(folder, port)
        self.stdout.write(
            f"Demo SMTP relay on 127.0.0.1:{port} (STARTTLS, user {DEMO_USERNAME!r}, "
            f"password {DEMO_PASSWORD!r}); "
            f"mail goes to {folder / 'mail'}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
