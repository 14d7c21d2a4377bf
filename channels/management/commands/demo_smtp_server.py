"""A local SMTP relay for the embedded demo (bin/run starts it): STARTTLS and AUTH like a real
ESP, so "Test connection" and "Send test email" on the demo's custom SMTP channels work.

Mail it accepts is written to var/demo-smtp/mail/ as .eml files; nothing leaves the machine.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from msc_admin.devtls import make_certificates

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-smtp-password"  # noqa: S105 - a documented demo credential on loopback


def demo_dir() -> Path:
    return Path(settings.VAR_DIR) / "demo-smtp"


class _Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued as " + name


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login.decode() == DEMO_USERNAME
        and data.password.decode() == DEMO_PASSWORD
    )
    return AuthResult(success=ok, handled=False)


class Command(BaseCommand):
    help = "Run the demo's local SMTP relay (STARTTLS + AUTH) on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=2525)

    def handle(self, *args: Any, port: int = 2525, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("The demo SMTP server runs only with DEBUG=true.")
        folder = demo_dir()
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
        self.stdout.write(
            f"Demo SMTP relay on 127.0.0.1:{port} (STARTTLS, user {DEMO_USERNAME!r}); "
            f"mail goes to {folder / 'mail'}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
