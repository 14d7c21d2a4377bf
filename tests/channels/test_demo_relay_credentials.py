"""The demo relay's user and password are printed by bin/run and written in the README, and
they are the ones the relay accepts (not only in the source)."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from pathlib import Path

import pytest

from demo.management.commands.demo_smtp_server import start_relay
from tests.mailservers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _from_readme() -> tuple[str, str]:
    found = re.search(r"as user `([^`]+)`, password `([^`]+)`", (ROOT / "README.md").read_text())
    assert found, "the README's demo section names the relay's user and password"
    return found.group(1), found.group(2)


def test_bin_run_prints_the_relays_user_and_password() -> None:
    user, password = _from_readme()
    banners = [line for line in (ROOT / "bin" / "run").read_text().splitlines() if "say " in line]
    relay = [line for line in banners if "2525" in line]
    assert relay and all(f"user {user}" in line and password in line for line in relay)
    assert f"user {user} / password {password}" in banners[-1]  # the last line before serving


@pytest.mark.parametrize("right", [True, False])
def test_the_relay_accepts_the_documented_login(
    tmp_path: Path, right: bool, caplog: pytest.LogCaptureFixture
) -> None:
    user, password = _from_readme()
    port = free_port()
    relay = start_relay(tmp_path, port)
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with smtplib.SMTP("localhost", port, timeout=10) as client:
            client.starttls(context=context)
            if right:
                assert client.login(user, password)[0] == 235
            else:
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login(user, password + "-wrong")
    finally:
        relay.stop()
    # bin/run's terminal: no aiosmtpd notice at each login (its "login_data is deprecated").
    noise = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [line for line in noise if "login_data" in line], noise
