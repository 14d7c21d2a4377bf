"""Personas as fixtures, real services from the environment bin/test sets up."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from accounts.models import Role, Tenant, User
from msc_admin.celery import app as celery_app
from msc_admin.devtls import Certificates, make_certificates
from tests.dnsserver import DnsServer, dns_server
from tests.factories import MembershipFactory, TenantFactory, UserFactory


def _database_banner() -> str:
    db = settings.DATABASES["default"]
    vendor = db["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "postgresql":
        import psycopg

        with psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname="postgres",
        ) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        return f"database: PostgreSQL {version} at {db['HOST']}:{db['PORT']}"
    return f"database: {vendor} (bin/test runs the suite on PostgreSQL)"


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [_database_banner(), f"redis: {os.environ.get('REDIS_URL', 'not set')}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(_database_banner())


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Django's own advice for test suites: a cheap hasher. Production keeps PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _outbound_to_loopback(settings) -> None:
    """Test servers (aiosmtpd, Dovecot) listen on loopback; the guard's own tests turn this off."""
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = True
    settings.MSC_OUTBOUND_TIMEOUT = 3


@pytest.fixture(scope="session")
def _empty_dns() -> Iterator[DnsServer]:
    """A loopback name server that knows no name. Saving a channel looks up its sending
    domains (channels.domaincheck); no test asks the world's DNS. Workers started by the
    tests inherit it through the environment."""
    with dns_server() as server:
        previous = os.environ.get("MSC_DNS_NAMESERVERS")
        os.environ["MSC_DNS_NAMESERVERS"] = server.address
        yield server
        if previous is None:
            os.environ.pop("MSC_DNS_NAMESERVERS", None)
        else:
            os.environ["MSC_DNS_NAMESERVERS"] = previous


@pytest.fixture(autouse=True)
def _dns_on_loopback(settings, _empty_dns: DnsServer) -> None:
    settings.MSC_DNS_NAMESERVERS = [_empty_dns.address]
    settings.MSC_DNS_TIMEOUT = 1


@pytest.fixture(autouse=True)
def _site_language() -> Iterator[None]:
    """Each test starts in the site's language. A request leaves the thread in its language (as
    Django's LocaleMiddleware does), and code run outside requests (services, tasks) would
    otherwise speak the language of whichever test ran before."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _clean_cache_and_eager_tasks() -> Iterator[None]:
    """Each test starts with an empty cache (rate limits) and runs tasks in-process.

    Tests marked ``celery_worker`` switch eager mode off and use a real worker instead.
    """
    cache.clear()
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
    cache.clear()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and server certificates for the loopback SMTP, IMAP and HTTPS servers."""
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(autouse=True)
def _trust_test_ca(settings, certs: Certificates) -> None:
    settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)


def add_totp(user: User) -> str:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str, *, margin: float = 5.0) -> str:
    """The code an authenticator app shows now, with at least ``margin`` seconds of its step left.

    allauth accepts only the current 30 s step (no tolerance): a code computed just before the
    step rolls over is refused by the time it is submitted. So near the end of a step this waits
    for the next one (at most ``margin`` seconds, bounded), then computes the code. ``margin``
    covers typing and submitting it, in a browser on a busy machine too.
    """
    period = mfa_settings.TOTP_PERIOD
    assert 0 < margin < period
    deadline = time.monotonic() + margin + 1
    while True:
        now = time.time()
        if period - now % period >= margin:
            return format_hotp_value(hotp_value(secret, int(now // period)))
        if time.monotonic() > deadline:
            raise AssertionError("the TOTP step did not roll over; is the clock moving?")
        time.sleep(0.05)


@pytest.fixture
def acme(db: None) -> Tenant:
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db: None) -> Tenant:
    return TenantFactory(name="Globex", slug="globex", legacy_toutapp=True)


@pytest.fixture
def admin_user(acme: Tenant) -> User:
    user = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    add_totp(user)
    return user


@pytest.fixture
def rep_user(acme: Tenant) -> User:
    return MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user


@pytest.fixture
def outsider_user(globex: Tenant) -> User:
    """An admin of another tenant."""
    user = MembershipFactory(tenant=globex, role=Role.ADMIN, user__email="admin@globex.test").user
    add_totp(user)
    return user


@pytest.fixture
def staff_user(db: None) -> User:
    user = UserFactory(email="staff@msc.test", is_staff=True, is_superuser=True)
    add_totp(user)
    return user


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    return _client_for(admin_user)


@pytest.fixture
def rep_client(rep_user: User) -> Client:
    return _client_for(rep_user)


@pytest.fixture
def outsider_client(outsider_user: User) -> Client:
    return _client_for(outsider_user)


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    """Signed in, with the password confirmed just now, as the staff console requires."""
    from tests.channels.conftest import reauthenticate

    client = _client_for(staff_user)
    reauthenticate(client)
    return client
