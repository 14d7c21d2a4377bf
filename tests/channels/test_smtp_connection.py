"""Test connection against real SMTP servers on loopback (aiosmtpd), each way it can go."""

from __future__ import annotations

import time

import pytest

from channels.kinds import Security, SmtpConfig
from channels.transports.smtp import check_connection
from msc_admin.devtls import Certificates
from tests.mailservers import SLOW_GREETING, dripping_server, smtp_server, stalling_server

USERS = {"alice": "right-password"}


def _config(port: int, security: str = Security.STARTTLS, **kw: object) -> SmtpConfig:
    return SmtpConfig(
        host="localhost",
        port=port,
        security=security,
        auth_method="PLAIN",
        username="alice",
        sending_domain="example.com",
        **kw,  # type: ignore[arg-type]
    )


def test_starttls_with_the_right_password_succeeds(certs: Certificates) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users=USERS) as server:
        report = check_connection(_config(server.port), "right-password")
    assert report.ok, report
    assert report.summary == "Connection, TLS and authentication succeeded."
    assert any("STARTTLS succeeded" in step for step in report.steps)
    assert any(step.startswith("TLSv1.") for step in report.steps)
    assert server.received.auth_attempts == [("PLAIN", "alice")]
    assert server.received.messages == []  # nothing was sent


def test_implicit_tls_with_the_right_password_succeeds(certs: Certificates) -> None:
    with smtp_server(mode="implicit", cert=certs.trusted, users=USERS) as server:
        report = check_connection(_config(server.port, Security.SSL_TLS), "right-password")
    assert report.ok, report
    assert server.received.auth_attempts == [("PLAIN", "alice")]


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_a_wrong_password_reports_the_servers_535(certs: Certificates, mode: str) -> None:
    security = Security.STARTTLS if mode == "starttls" else Security.SSL_TLS
    with smtp_server(mode=mode, cert=certs.trusted, users=USERS) as server:
        report = check_connection(_config(server.port, security), "wrong")
    assert not report.ok
    assert report.summary.startswith("Authentication unsuccessful (535 5.7.8")


def test_a_server_without_starttls_never_receives_the_password(certs: Certificates) -> None:
    with smtp_server(mode="plain", users=USERS) as server:
        report = check_connection(_config(server.port), "right-password")
    assert not report.ok
    assert "does not offer STARTTLS, so the password was not sent" in report.summary
    assert server.received.auth_attempts == []


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_a_self_signed_certificate_is_refused(certs: Certificates, mode: str) -> None:
    security = Security.STARTTLS if mode == "starttls" else Security.SSL_TLS
    with smtp_server(mode=mode, cert=certs.self_signed, users=USERS) as server:
        report = check_connection(_config(server.port, security), "right-password")
    assert not report.ok
    assert report.summary.startswith("certificate not trusted")
    assert server.received.auth_attempts == []


def test_a_server_that_accepts_and_stalls_times_out(settings) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    with stalling_server() as server:
        report = check_connection(_config(server.port), "right-password")
    assert not report.ok
    assert report.summary == "no answer after 1 s"


def test_a_server_dripping_its_greeting_is_cut_off_at_the_deadline(settings) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    with dripping_server(SLOW_GREETING, every=0.5) as server:
        started = time.monotonic()
        report = check_connection(_config(server.port), "right-password")
        took = time.monotonic() - started
    assert not report.ok
    assert report.summary == "the server did not finish the conversation within 2 s"
    assert 2 <= took < 3, took
    assert server.dripped >= 3  # it kept answering: it was the deadline, not a read timeout


def test_a_closed_port_says_connection_refused() -> None:
    from tests.mailservers import free_port

    report = check_connection(_config(free_port()), "x")
    assert not report.ok
    assert "Connection refused" in report.summary


def test_an_unoffered_auth_method_is_named(certs: Certificates) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users=USERS) as server:
        config = SmtpConfig(
            host="localhost",
            port=server.port,
            security=Security.STARTTLS,
            auth_method="CRAM-MD5",
            username="alice",
            sending_domain="example.com",
        )
        report = check_connection(config, "right-password")
    assert not report.ok
    assert "does not offer AUTH CRAM-MD5" in report.summary
