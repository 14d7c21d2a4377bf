"""Secrets at rest: sealed with a named key, fail closed, rotated by a resumable command."""

from __future__ import annotations

import os
import subprocess

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from accounts.models import Tenant, User
from channels.kinds import SmtpConfig
from channels.models import Channel, MscServer
from channels.services import channel_save_smtp
from msc_admin import crypto
from tests.conftest import add_totp

K1 = Fernet.generate_key().decode()
K2 = Fernet.generate_key().decode()


@pytest.fixture
def one_key(settings) -> None:
    settings.MSC_SECRET_KEYS = [("k1", K1)]


def test_seal_names_its_key_and_round_trips(one_key: None) -> None:
    envelope = crypto.seal("hunter2-is-my-api-key")
    assert envelope.startswith("enc1:k1:")
    assert "hunter2" not in envelope
    assert crypto.unseal(envelope) == "hunter2-is-my-api-key"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda e: e.replace("enc1:k1:", "enc1:k9:"), "key 'k9', which is not configured"),
        (lambda e: e[:-6] + ("AAAAAA" if not e.endswith("AAAAAA") else "BBBBBB"), "integrity"),
        (lambda e: "plain text password", "not in the expected format"),
    ],
)
def test_unsealing_fails_closed(one_key: None, mangle, message: str) -> None:
    with pytest.raises(crypto.SecretUnavailable, match=message):
        crypto.unseal(mangle(crypto.seal("s3cret")))


def _smtp_channel(tenant: Tenant, owner: User, password: str) -> Channel:
    config = SmtpConfig(host="localhost", port=2525, username="u", sending_domain="example.com")
    return channel_save_smtp(
        tenant=tenant, actor=owner, owner=owner, config=config, password=password
    )


def _msc_server(name: str, password: str) -> MscServer:
    server = MscServer(name=name, host=f"{name}.msc.test", username="relay")
    server.set_password(password)
    server.save()
    return server


def test_rotation_re_encrypts_every_row_and_is_idempotent(
    settings,
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    capsys,
) -> None:
    settings.MSC_SECRET_KEYS = [("k1", K1)]
    a = _smtp_channel(acme, admin_user, "password-a")
    b = _smtp_channel(acme, rep_user, "password-b")
    Authenticator.objects.filter(user=admin_user).delete()  # made by the fixture, another key
    add_totp(admin_user)
    totp = Authenticator.objects.get(user=admin_user, type="totp")
    assert totp.data["secret"].startswith("enc1:k1:")
    servers = [_msc_server(f"msc-{n}", f"pool-password-{n}") for n in range(3)]
    assert all(server.secret.startswith("enc1:k1:") for server in servers)

    settings.MSC_SECRET_KEYS = [("k2", K2), ("k1", K1)]
    call_command("rotate_secrets", batch_size=2)
    for channel, password in ((a, "password-a"), (b, "password-b")):
        channel.refresh_from_db()
        assert channel.secret.startswith("enc1:k2:")
        assert channel.read_secret() == {"password": password}
    for n, server in enumerate(servers):
        server.refresh_from_db()
        assert server.secret.startswith("enc1:k2:")
        assert server.password() == f"pool-password-{n}"
    totp.refresh_from_db()
    assert totp.data["secret"].startswith("enc1:k2:")
    assert TOTP(totp).instance.data["secret"]  # still readable by allauth through our adapter

    capsys.readouterr()
    call_command("rotate_secrets")
    out = capsys.readouterr().out
    assert "channel secrets: 0 re-encrypted" in out
    assert "MSC server passwords: 0 re-encrypted" in out
    assert "MFA authenticators: 0 re-encrypted" in out

    # Once the old key is retired, nothing depends on it.
    settings.MSC_SECRET_KEYS = [("k2", K2)]
    a.refresh_from_db()
    assert a.read_secret() == {"password": "password-a"}
    servers[0].refresh_from_db()
    assert servers[0].password() == "pool-password-0"


def test_rows_under_a_removed_key_fail_closed_and_are_reported(
    settings,
    acme: Tenant,
    admin_user: User,
    capsys,
) -> None:
    settings.MSC_SECRET_KEYS = [("k1", K1)]
    channel = _smtp_channel(acme, admin_user, "password-a")
    server = _msc_server("msc-old", "pool-password")
    settings.MSC_SECRET_KEYS = [("k2", K2)]
    with pytest.raises(crypto.SecretUnavailable):
        channel.read_secret()
    call_command("rotate_secrets")
    err = capsys.readouterr().err
    assert "could not be decrypted" in err
    assert f"MSC server passwords #{server.pk}" in err
    channel.refresh_from_db()
    assert channel.secret.startswith("enc1:k1:")
    server.refresh_from_db()
    assert server.secret.startswith("enc1:k1:")


@pytest.mark.django_db(transaction=True)
def test_a_database_dump_contains_no_plaintext_secret(tmp_path) -> None:
    from tests.factories import MembershipFactory, TenantFactory

    tenant = TenantFactory()
    user = MembershipFactory(tenant=tenant, role="admin").user
    _smtp_channel(tenant, user, "smtp-password-that-must-not-leak")
    totp_secret = add_totp(user)
    db = connection.settings_dict
    pg_dump = os.path.join(os.environ.get("MSC_TEST_PGBIN", "/usr/bin"), "pg_dump")
    dump = subprocess.run(
        [pg_dump, "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], db["NAME"]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "enc1:" in dump  # the sealed values are there...
    assert "smtp-password-that-must-not-leak" not in dump  # ...and nothing readable
    assert totp_secret not in dump
