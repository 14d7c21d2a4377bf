"""CSRF on every unsafe route, the CSP header on every response, and mail text always escaped."""

from __future__ import annotations

import re
from pathlib import Path

from django.test import Client
from django.urls import reverse

from accounts.models import User
from bounces import services as bounces
from tests.bounces.conftest import dsn_for, mark_sent
from tests.msc_admin.test_csp import assert_strict_csp
from tests.routes import all_routes
from tests.security.conftest import World, database_state, fresh_client
from tests.security.test_cross_tenant import CASES
from tests.sending.conftest import queue_message

ROOT = Path(__file__).resolve().parents[2]

# Views that take POSTs without a CSRF token, and why that is safe.
CSRF_EXEMPT = {
    "sending:api_messages": "bearer-token API: no cookie is sent, so no request to forge",
    "bounces:webhook_sendgrid": "ESP webhook: HTTP Basic secret per channel, no cookie",
    "bounces:webhook_sparkpost": "ESP webhook: HTTP Basic secret per channel, no cookie",
}


def _csrf_client(user: User) -> Client:
    """Signed in with the password just confirmed (so no route stops at a re-auth redirect
    first), then checked for CSRF like a browser."""
    client = Client(enforce_csrf_checks=True)
    client.cookies = fresh_client(user).cookies
    return client


def test_only_the_documented_views_skip_csrf() -> None:
    exempt = {r.name for r in all_routes() if getattr(r.callback, "csrf_exempt", False)}
    assert exempt == set(CSRF_EXEMPT)


def test_every_unsafe_route_refuses_a_post_without_the_token(
    world: World, staff_user: User
) -> None:
    admin, staff, anonymous = (
        _csrf_client(world.admin),
        _csrf_client(staff_user),
        Client(enforce_csrf_checks=True),
    )
    before = database_state()
    checked = 0
    for route in all_routes():
        if route.name in CSRF_EXEMPT:
            continue
        path = route.sample()
        clients = [staff] if path.startswith("/staff/") else [admin, anonymous]
        for client in clients:
            for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
                response = client.post(path, {"name": "x"}, **headers)
                assert response.status_code == 403, (path, response.status_code)
                # Refused by the CSRF check (the product's page for it), not by another 403.
                assert b"This form could not be sent" in response.content, path
                assert_strict_csp(response)
                checked += 1
    assert checked > 150
    assert database_state() == before


def _responses(world: World, staff_user: User) -> list[tuple[str, object]]:
    admin, rep, staff = (
        fresh_client(world.admin),
        fresh_client(world.rep),
        fresh_client(staff_user),
    )
    seen = []
    for route in all_routes():
        if route.params or route.name in ("account_logout",):
            continue
        client = staff if route.route.startswith("/staff/") else admin
        seen.append((route.route, client.get(route.route)))
    for name, (kwargs_of, _) in CASES.items():
        url = reverse(name, kwargs=kwargs_of(world))
        seen.append((url, rep.get(url)))
    seen.append(("/no-such-page/", admin.get("/no-such-page/")))
    seen.append(("/staff/ as a rep", rep.get("/staff/")))
    seen.append(("health", Client().get(reverse("health"))))
    return seen


def test_every_response_type_carries_the_policy(world: World, staff_user: User) -> None:
    kinds: set[tuple[int, str]] = set()
    for where, response in _responses(world, staff_user):
        assert response.status_code < 500, where  # type: ignore[attr-defined]
        try:
            assert_strict_csp(response)
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}") from None
        content_type = response.get("Content-Type", "-").split(";")[0]  # type: ignore[attr-defined]
        kinds.add((response.status_code // 100, content_type))  # type: ignore[attr-defined]
    # Pages, fragments, CSV, JSON, redirects, 403/404/405 pages were all among them.
    types = {t for _, t in kinds}
    assert {"text/html", "text/csv", "application/json"} <= types, kinds
    assert {2, 3, 4} <= {status for status, _ in kinds}, kinds


TEMPLATE_TRAPS = re.compile(r"\|\s*safe\b|\bsafeseq\b|autoescape\s+off|\{%\s*filter\s+safe")
PYTHON_TRAPS = re.compile(r"\bmark_safe\b|\bSafeString\b|\bSafeData\b|__html__")


def test_nothing_marks_text_safe_by_hand() -> None:
    """Escaping is never switched off: there is no ``|safe``, ``mark_safe`` or the like in our
    templates or code. Markup is built with ``format_html``, which escapes its arguments."""
    found = []
    for path in ROOT.rglob("*"):
        if any(
            part in {".venv", "node_modules", ".git", "var", "staticfiles"} for part in path.parts
        ):
            continue
        if path.suffix == ".html" and "/templates/" in str(path):
            trap = TEMPLATE_TRAPS
        elif path.suffix == ".py" and "tests" not in path.parts:
            trap = PYTHON_TRAPS
        else:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if trap.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, found


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_hostile_mail_text_is_shown_escaped_everywhere(world: World) -> None:
    """A bounce whose diagnostic, recipient and subject carry markup, as a hostile MTA or
    prospect could send, is shown as text on every page that shows mail."""
    message = mark_sent(
        queue_message(
            world.tenant,
            world.rep,
            world.identity,
            to="victim@prospect.test",
            subject=f"Re: {HOSTILE}",
            template=world.template,
        )
    )
    raw = dsn_for(message, diagnostic=f"550 5.1.1 {HOSTILE} <{{rcpt}}> unknown")
    bounces.ingest(tenant=world.tenant, raw=raw)
    event = message.bounce_events.get()  # type: ignore[attr-defined]
    assert "<script>" in event.diagnostic  # stored as received...
    rep = fresh_client(world.rep)
    pages = [
        reverse("bounces:detail", args=[event.pk]),
        reverse("bounces:list"),
        reverse("sending:outbox_folder", args=["bounced"]),
        reverse("analytics:live_feed"),
        reverse("analytics:live_feed_newer"),
        reverse("analytics:template_bounces", args=[world.template.pk]),
        reverse("analytics:breakdown"),
    ]
    shown = 0
    for url in pages:
        body = rep.get(url).content.decode()
        assert "<script>alert" not in body and "<img src=x" not in body, url  # ...never as markup
        shown += "&lt;script&gt;alert" in body
    assert shown >= 3
