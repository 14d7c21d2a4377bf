"""The audit logs in words: every field a service records reads as its label, every value in
plain words (yes / no, "not set", a choice's name), through one mapping (``msc_admin.audit``)."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ExchangeOnPremConfig, OAuthConfig, SmtpConfig
from channels.models import MscServer
from msc_admin import audit
from staff import services as staff_services
from tests.test_locking_services import app_sources

# A dict literal handed to an audit row as its changes / details, and a key added to one.
RECORDED = re.compile(r"\b(?:changes|details)=\{")
ADDED = re.compile(r"\b(?:extra|changes)\[\"(\w+)\"\]")
KEY = re.compile(r"\"(\w+)\":")


def _top_level_keys(text: str, start: int) -> set[str]:
    """The keys of the dict literal opening at ``text[start]`` (not those of nested dicts)."""
    depth, keys = 0, set()
    for position in range(start, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
            if depth == 1 and (key := KEY.match(text, position + 1)):
                keys.add(key.group(1))
        elif char == "}":
            depth -= 1
            if depth == 0:
                return keys
        elif char == "," and depth == 1:
            following = text[position + 1 :].lstrip()
            if key := KEY.match(following):
                keys.add(key.group(1))
    return keys


def recorded_keys() -> set[str]:
    """Every field name the code records in an audit row: the keys of the dict literals
    handed to the audit services, the keys added to them, the per-kind settings (diffed when
    a channel is saved), the team's settings and the pool server's fields."""
    keys: set[str] = set()
    for text in app_sources().values():
        for found in RECORDED.finditer(text):
            keys |= _top_level_keys(text, found.end() - 1)
        keys |= set(ADDED.findall(text))
    for config in (SmtpConfig, ExchangeOnPremConfig, OAuthConfig):
        keys |= {f.name for f in fields(config)}
    from channels.forms import SpikeProtectionForm, ThrottlingForm

    keys |= set(ThrottlingForm.base_fields) | set(SpikeProtectionForm.base_fields)
    from channels.pool import _SERVER_FIELDS

    return keys | set(_SERVER_FIELDS)


def test_every_field_an_audit_row_can_hold_has_a_label() -> None:
    keys = recorded_keys()
    assert {"auth_method", "use_for_all_members", "msc_channels_disabled", "url", "ok"} <= keys
    assert "from_name" in keys and "from" not in keys  # a nested dict's keys are not fields
    missing = sorted(k for k in keys if k not in audit.LABELS)
    assert missing == [], f"give these a label in msc_admin.audit.register: {missing}"


def test_values_read_in_words() -> None:
    assert [(line.label, line.text) for line in audit.lines({})] == []
    lines = audit.lines(
        {
            "auth_method": {"from": None, "to": "PLAIN"},
            "sending_domain": {"from": "", "to": "acme.test"},
            "use_for_all_members": {"from": False, "to": True},
            "server_url": {"from": None, "to": ""},
            "security": {"from": "ssl_tls", "to": "starttls"},
            "daily_limit": {"from": None, "to": 1000},
            "ok": False,
            "users": 2,
        }
    )
    assert [f"{line.label}: {line.text}" for line in lines] == [
        "Authentication method: not set → PLAIN",
        "Sending domain: not set → acme.test",
        "Used for every member: no → yes",
        "EWS URL: not set → not set",
        "Security: SSL/TLS → STARTTLS",
        "Daily sending limit: not set → 1000",
        "Passed: no",
        "People told: 2",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_channel_audit_log_shows_labels_and_words_not_field_names(
    acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=SmtpConfig(host="localhost", port=2525, username="a", sending_domain="acme.test"),
        password="secret-4711",
        use_for_all_members=True,
    )
    channel_services.channel_save_exchange_onprem(
        tenant=acme,
        actor=admin_user,
        owner=admin_user,
        config=ExchangeOnPremConfig(
            autodiscover=True, username="ACME\\ada", email="admin@acme.test", daily_limit=1000
        ),
        password="pw",
    )
    admin_client.post(
        reverse("channels:throttling"),
        {"throttling_enabled": "", "batch_size": "7", "wait_seconds": "90"},
    )
    page = admin_client.get(reverse("channels:audit")).content.decode()
    changes = " ".join(re.findall(r'<td data-label="Changes">(.*?)</td>', page, re.S))
    for words in (
        "Authentication method: not set → PLAIN",
        "Sending domain: not set → acme.test",
        "Used for every member: no → yes",
        "Password: changed (value not recorded)",
        "EWS URL: not set → not set",
        "Find the server with Autodiscover: not set → yes",
        "Daily sending limit: not set → 1000",
        "Throttle Email Connection sends: yes → no",
        "Batch size: 25 → 7",
    ):
        assert words in changes, words
    for raw in ("auth_method", "sending_domain", "use_for_all_members", "True", "None", "<code>"):
        assert raw not in changes, raw
    assert "secret-4711" not in page


def test_the_staff_audit_log_shows_labels_and_words(
    staff_client: Client, staff_user: User, globex: Tenant
) -> None:
    staff_services.audit(
        actor=staff_user,
        action="moved off legacy ToutApp",
        tenant=globex,
        details={"msc_channels_disabled": 2, "users": 2, "messages_held": 1},
    )
    staff_services.audit(
        actor=staff_user,
        action="refused while viewing as tenant",
        tenant=globex,
        details={"url": "/channels/2/test/", "view": "channels:test", "htmx": True},
    )
    server = MscServer.objects.create(name="msc-1", host="relay.msc.test", username="pool")
    staff_services.audit(
        actor=staff_user,
        action="checked MSC server",
        subject=str(server),
        details={"ok": False, "result": "Connection refused."},
    )
    page = staff_client.get(reverse("staff:audit")).content.decode()
    details = " ".join(re.findall(r'<td data-label="Details">(.*?)</td>', page, re.S))
    # (PostgreSQL keeps a JSON object's keys in its own order.)
    for words in (
        "MSC channels retired: 2",
        "People told: 2",
        "Messages held: 1",
        "Address: /channels/2/test/",
        "Page: channels:test",
        "In-page request: yes",
        "Passed: no",
        "Result: Connection refused.",
    ):
        assert words in details, words
    for raw in ("msc_channels_disabled", "messages_held", "htmx", "True", "False", "ok:"):
        assert raw not in details, raw
