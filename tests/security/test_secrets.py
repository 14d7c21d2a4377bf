"""A secret entered in a form never shows up again: not in logs, task arguments, error pages or
error reports, nor (``tests/channels/test_secrets``) in a database dump."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from celery.signals import task_prerun
from django.urls import reverse
from django.views.debug import ExceptionReporter

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.models import Channel, MscServer
from msc_admin.devtls import Certificates
from sending.models import ApiToken
from sending.services import TOKEN_PREFIX
from tests.mailservers import smtp_server
from tests.security.conftest import fresh_client
from tests.sending.conftest import queue_message

CANARY = "canary-Pa55word-7f3a9c"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    handler, root = _Everything(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def task_calls() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(sender=None, args=None, kwargs=None, **_: object) -> None:
        seen.append(f"{sender.name} {args!r} {kwargs!r}")

    task_prerun.connect(record, weak=False)
    yield seen
    task_prerun.disconnect(record)


def _text_of(record: logging.LogRecord) -> str:
    text = record.getMessage() + repr(record.args) + repr(record.__dict__.get("extra", ""))
    if record.exc_info:
        text += "".join(logging.Formatter().formatException(record.exc_info))
    return text


def test_an_smtp_password_appears_in_no_log_task_argument_or_page(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    certs: Certificates,
    every_log_record: list[logging.LogRecord],
    task_calls: list[str],
    django_capture_on_commit_callbacks,
) -> None:
    admin = fresh_client(admin_user)
    # The server refuses the password, so every failure path (test, send, retry) logs.
    with smtp_server(mode="starttls", cert=certs.trusted, users={"apikey": "other"}) as server:
        form = {
            "host": "localhost",
            "port": str(server.port),
            "security": "starttls",
            "auth_method": "PLAIN",
            "username": "apikey",
            "password": CANARY,
            "sending_domain": "acme.test",
            "use_for_all_members": "on",
        }
        response = admin.post(reverse("channels:team_smtp_edit"), form)
        assert response.status_code == 302
        channel = Channel.objects.get(tenant=acme, owner__isnull=True)
        assert channel.read_secret() == {"password": CANARY}
        pages = [
            admin.post(reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"),
            admin.post(reverse("channels:test_email", args=[channel.pk]), {"to": "a@b.test"}),
            admin.get(reverse("channels:team_smtp_edit")),
            admin.get(reverse("channels:team")),
            admin.get(reverse("channels:audit")),
        ]
        identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
        with django_capture_on_commit_callbacks(execute=True):
            message = queue_message(acme, rep_user, identity)  # sent by its task, and refused
        assert server.received.auth_attempts  # the password really went over the wire
    message.refresh_from_db()
    assert message.status_detail  # the failure was recorded
    pages.append(fresh_client(rep_user).get(reverse("sending:outbox_folder", args=["failed"])))
    pages.append(fresh_client(rep_user).get(reverse("sending:outbox")))

    for response in pages:
        assert CANARY not in response.content.decode()
    logged = [_text_of(r) for r in every_log_record if not r.name.startswith("mail.log")]
    assert any("send_message" in line for line in logged)  # the capture saw the product's logs
    assert not [line for line in logged if CANARY in line]
    assert task_calls and not [call for call in task_calls if CANARY in call]


@pytest.mark.parametrize(
    ("name", "persona"),
    [
        ("channels:team_smtp_edit", "admin"),
        ("channels:smtp_edit", "rep"),
        ("staff:servers", "staff"),
    ],
)
def test_a_crash_while_saving_a_password_reports_no_password(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    every_log_record: list[logging.LogRecord],
    name: str,
    persona: str,
) -> None:
    """The 500 page shows nothing, and the error report (what ``mail_admins`` or an error
    tracker would receive, built from the logged request) shows the password as stars."""
    user = request.getfixturevalue(f"{persona}_user")
    client = fresh_client(user)
    client.raise_request_exception = False

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    # The crash comes from inside the real save, with the password in its frames' variables.
    monkeypatch.setattr("channels.services.audit", boom)
    monkeypatch.setattr("staff.services.audit", boom)
    form = {
        "name": "relay",
        "host": "localhost",
        "port": "2525",
        "security": "starttls",
        "auth_method": "PLAIN",
        "username": "apikey",
        "password": CANARY,
        "sending_domain": "acme.test",
    }
    response = client.post(reverse(name), form)
    assert response.status_code == 500
    assert CANARY not in response.content.decode()
    assert not MscServer.objects.exists() and not Channel.objects.exists()

    crash = next(r for r in every_log_record if r.name == "django.request" and r.exc_info)
    assert crash.exc_info is not None
    report = ExceptionReporter(crash.request, *crash.exc_info)  # type: ignore[attr-defined]
    text, html = report.get_traceback_text(), report.get_traceback_html()
    assert "the database went away" in text
    assert CANARY not in text and CANARY not in html
    assert "password" in text  # the field is listed, its value starred
    # (With DEBUG on, Django's filter shows everything by design; production refuses DEBUG.)


def test_an_api_token_is_shown_once_and_never_logged(
    acme: Tenant, rep_user: User, every_log_record: list[logging.LogRecord]
) -> None:
    client = fresh_client(rep_user)
    response = client.post(reverse("sending:api_tokens"), {"name": "CRM"}, follow=True)
    body = response.content.decode()
    words = body.replace('"', " ").replace("<", " ").replace(">", " ").split()
    token = next(w for w in words if w.startswith(TOKEN_PREFIX) and len(w) > 20)
    assert token not in client.get(reverse("sending:api_tokens")).content.decode()
    assert not [r for r in every_log_record if token in _text_of(r)]
    assert token not in str(list(ApiToken.objects.values()))  # only its prefix and a digest
