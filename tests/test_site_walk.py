"""The production-mode walk: the whole site as each persona, on PostgreSQL in autocommit.

Production serves each request in autocommit (no transaction around it), so these tests run
with ``transaction=True``: a service that locks rows without its own transaction fails here as it
fails for users. The world is the demo's (``seed_demo``: every channel kind, campaigns, bounces,
the MSC pool, the legacy tenant Globex) plus what the demo lacks (MFA for admins and staff, as
production requires; an open bounce spike; a pending invitation; mail held for a channel), and a
real SMTP server on loopback plays every mail server. Nothing leaves the machine: HTTP is
stopped by ``responses``, IMAP goes to a closed loopback port.

As each persona the walk starts at ``/`` and follows links and ``hx-get`` targets to the
navigation and two clicks deeper (``tests/walk.py``), then submits every kind of form those pages
render (forms that differ only by the row they act on count once): with the values they render,
plain and again with htmx, and then with their required blanks filled in as a person would,
plain and with htmx; each time from the page as it is then. It fails on:

- any 5xx, with the traceback;
- a page that answers other than 200 (or redirects landing on a 200);
- a form answered other than 2xx, a redirect to a working page, or a 4xx that re-renders the
  form with its error, unless ``expected_refusal`` says that persona is refused there;
- a full page without the stylesheet or a heading, or "MSC servers" shown to a modern tenant;
- a bounce reason shown as its code ("userunknown") rather than in words;
- a page using a service that locks rows (``LOCKING_PAGES``) the walk did not get through.

Every request is a line of ``test-artifacts/site-walk/<persona>.txt``, with what was not
followed or not submitted, and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from itertools import count
from pathlib import Path

import pytest
import responses
from django.core.management import call_command
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Role, Tenant, User
from bounceparse.labels import LABELS
from bounces.models import BounceSpike
from channels import services as channel_services
from channels.demo import (
    DEMO_OAUTH_TOKEN,
    DEMO_PASSWORD,
    DEMO_USERNAME,
)
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, Identity, MscServer
from msc_admin.devtls import Certificates
from sending.models import Hold, Message, Suppression, SuppressionReason
from tests.conftest import add_totp
from tests.mailservers import SmtpServer, free_port, smtp_server
from tests.sending.conftest import queue_message
from tests.test_locking_services import app_sources, collect
from tests.walk import Form, Visit, Walker, parse

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "site-walk"
PASSWORD = "demo-password-123"  # seed_demo's documented password
DEPTH = 3  # "/" is 0, its navigation 1, then two clicks deeper
MSC_WORDS = re.compile(r"MSC\s+servers?", re.IGNORECASE)
ENGLISH_REASONS = {"blocked", "expired", "filtered", "rejected", "speeding", "suspend", "undefined"}
# Reason codes that are no English word ("rejected", "blocked" can be a server's words): shown
# to people, each must be in words (its code only in a title, or in a CSV).
RAW_REASONS = re.compile(
    r"\b(?:" + "|".join(code for code in LABELS if code not in ENGLISH_REASONS) + r")\b"
)


@dataclass(frozen=True)
class Persona:
    email: str | None = None
    modern: bool = False  # sees a modern tenant's pages: never the words "MSC servers"
    view_as: str = ""  # staff viewing this tenant (read-only)
    min_pages: int = 2  # the walk found the site, not just a sign-in page


PERSONAS = {
    "visitor": Persona(),
    "rep": Persona("rep@acme.test", modern=True, min_pages=60),
    "admin": Persona("admin@acme.test", modern=True, min_pages=80),
    "legacy_admin": Persona("admin@globex.test", min_pages=70),
    "staff": Persona("staff@msc.test", min_pages=8),
    "staff_viewing_acme": Persona("staff@msc.test", modern=True, view_as="acme", min_pages=80),
}

# The pages that use a service locking rows with SELECT … FOR UPDATE, and who gets through them
# on the walk: a locking service that lost its transaction fails the walk in autocommit.
# ``test_every_locking_service_is_walked_or_explained`` keeps this in step with the code.
LOCKING_PAGES = {
    "channels.services.team_settings_update": ("channels:throttling", "admin"),
    "channels.services.channel_save_smtp": ("channels:team_smtp_edit", "admin"),
    "channels.services.channel_save_exchange_onprem": ("channels:exchange_edit", "legacy_admin"),
    "channels.services.channel_select_legacy": ("channels:legacy_select", "legacy_admin"),
    "channels.services.channel_set_trial": ("channels:trial_account", "rep"),
    "channels.domaincheck.services._store": ("channels:domain_check", "admin"),
    "channels.oauth.fresh_access_token": ("bounces:scan", "rep"),
    "accounts.services.membership_change_role": ("accounts:membership_role", "admin"),
    "accounts.services.membership_set_active": ("accounts:membership_active", "admin"),
    "bounces.services.undo": ("bounces:undo", "admin"),
    "bounces.reclassify._apply": ("bounces:recheck", "admin"),
    "bounces.reclassify._follow": ("bounces:recheck", "admin"),
    "bounces.spikes.resolve": ("bounces:spike_resolve", "admin"),
    "bounces.webhooks.webhook_issue": ("bounces:webhook_issue", "legacy_admin"),
    "sending.services.messages.messages_reroute_held": ("sending:reroute_held", "admin"),
    "sending.services.campaigns.step_add": ("sending:step_add", "rep"),
    "sending.services.suppressions.suppressions_remove": ("sending:suppressions_remove", "admin"),
    "sending.services.suppressions.suppressions_lift_for_messages": ("bounces:undo", "admin"),
    "staff.services.tenant_unflag_legacy": ("staff:tenant_legacy", "staff"),
}
# Locking code that no page reaches, and where it is tested instead.
LOCKING_ELSEWHERE = {
    "accounts.services.membership_accept_invitation": "an emailed invitation link (tests/accounts)",
    "channels.services.channel_connect_oauth": "the provider's consent page (tests/channels)",
    "channels.services.channel_set_reading": (
        "bounces:reading, on an admin's own mailbox card; the walk's mailboxes are the demo's, "
        "read from a local folder, with no choice (tests/bounces/test_reading.py, in autocommit)"
    ),
    "channels.services.channel_store_send_as": (
        "a provider's send-as list; the demo's placeholder mailboxes offer no refresh "
        "(tests/channels/test_send_as.py, in autocommit)"
    ),
    "bounces.spikes.check": "bounce ingestion: inbox scans and ESP webhooks (tests/bounces)",
    "sending.domainlimits.provider_pause": (
        "a provider's bounce spike in bounce ingestion (tests/bounces/test_provider_spikes.py)"
    ),
    "sending.domainlimits.provider_resume": (
        "bounces:spike_resolve of a provider's spike; the demo's spike is a channel's "
        "(tests/bounces/test_provider_spikes.py, in autocommit)"
    ),
    "sending.services.messages._bounce_rows_portable": "bounce ingestion on SQLite (tests/bounces)",
    "sending.services.responses.messages_responded": (
        "complaint and reply ingestion: inbox scans and ESP webhooks (tests/bounces)"
    ),
    "sending.pipeline.reconcile_stuck": "Celery beat (tests/sending/test_workers.py)",
    "channels.management.commands.rotate_secrets.handle": "a command (tests/channels)",
}

# Forms that change what later forms find, submitted after all others, in this order: first
# those that remove or retire something (so no earlier form meets a missing row), then those
# that change the session itself (its MFA, staff's view-as, signing out), after each of which
# the persona is restored (``_restore``).
LAST = [
    "bounces:undo",
    "bounces:spike_resolve",
    "sending:campaign_action",
    "sending:step_remove",
    "sending:delete",
    "sending:suppressions_remove",
    "sending:template_delete",
    "sending:api_token_revoke",
    "channels:blocked_remove",
    "channels:remove",
    "accounts:membership_active",
    "staff:server_enabled",
    "staff:tenant_legacy",
    "mfa_deactivate_totp",
    "staff:view_as",
    "staff:view_as_stop",
    "account_logout",
]
# What staff may still do while viewing a tenant (everything else is refused, read-only).
VIEW_AS_ALLOWED = {"staff:view_as_stop", "account_logout"}


def expected_refusal(persona: Persona, form: Form, *, htmx: bool) -> tuple[int, str] | None:
    """The status and words a persona gets from a form shown to them, when it is a refusal by
    design: staff viewing a tenant see its forms, and every change is refused: an htmx request
    with 403 and the reason for the button's result, a plain one by going back to a page that
    shows the reason (the person's input is never the only thing on screen)."""
    if persona.view_as and form.method == "post" and form.route not in VIEW_AS_ALLOWED:
        return (403 if htmx else 302), "read-only: nothing can be changed"
    return None


# --- the world ----------------------------------------------------------------------------------


@pytest.fixture
def demo_world(transactional_db: None, settings, certs: Certificates) -> Iterator[SmtpServer]:
    """The demo's data with MFA on (as in production), served by a real SMTP server."""
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: IMAP fails fast, on this machine
    settings.MSC_GMAIL_IMAP = settings.MSC_OUTLOOK_IMAP = closed
    settings.MSC_DEMO_MAILBOXES = ""
    with smtp_server(
        mode="starttls",
        cert=certs.trusted,
        users={DEMO_USERNAME: DEMO_PASSWORD},
        tokens={DEMO_OAUTH_TOKEN},
    ) as relay:
        settings.MSC_GMAIL_SMTP = f"localhost:{relay.port}"
        call_command("seed_demo", force=True, stdout=StringIO())
        for channel in Channel.objects.filter(kind=ChannelKind.CUSTOM_SMTP):
            channel.config = {**channel.config, "port": relay.port}
            channel.save(update_fields=["config"])
        MscServer.objects.update(port=relay.port)
        for email in ("admin@acme.test", "admin@globex.test", "staff@msc.test"):
            add_totp(User.objects.get(email=email))
        _what_the_demo_lacks()
        yield relay


def _what_the_demo_lacks() -> None:
    acme = Tenant.objects.get(slug="acme")
    admin = User.objects.get(email="admin@acme.test")
    account_services.membership_invite(
        tenant=acme, email="new.hire@acme.test", role=Role.REP, invited_by=admin
    )
    # Suppressed addresses, so that the list's removal (asked, then confirmed) is walked too.
    for address in ("gone1@prospect.test", "gone2@prospect.test"):
        Suppression.objects.create(tenant=acme, address=address, reason=SuppressionReason.MANUAL)
    now = timezone.now()
    # A spike on each of Acme's four channels: both ways of resolving one ("resume", "undo and
    # resume") are submitted plain and with htmx, and each resolves a spike.
    for channel in Channel.objects.for_tenant(acme):
        BounceSpike.objects.create(
            tenant=acme,
            channel=channel,
            detected_at=now,
            window_start=now - timedelta(hours=1),
            sent=20,
            bounced=5,
            threshold_pct=10,
        )
        Channel.objects.filter(pk=channel.pk).update(
            status=ChannelStatus.PAUSED, status_message="Paused automatically: 5 of 20 bounced."
        )
    # Mail whose channel was retired, waiting for its sender to choose another: the admin's
    # own SMTP channel (not paused), chosen for the identity, is where the Outbox offers to
    # send it (it offers nothing while every route is paused).
    identity = Identity.objects.get(user=admin, is_default=True)
    own = channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin,
        owner=admin,
        config=Channel.objects.for_tenant(acme).team().get().smtp,
        password=DEMO_PASSWORD,
    )
    channel_services.identity_set_channel(identity=identity, channel=own, actor=admin)
    with transaction.atomic():  # held before its send task (enqueued on commit) looks at it
        held = queue_message(acme, admin, identity)
        Message.objects.filter(pk=held.pk).update(hold=Hold.CHANNEL, next_attempt_at=None)


def sign_in(client: Client, persona: Persona) -> None:
    """Signed in with the password confirmed through its form (the staff console and the
    credential forms ask for a recent confirmation); staff then start viewing a tenant through
    the console's own form."""
    assert persona.email
    client.force_login(User.objects.get(email=persona.email))
    url = "/accounts/reauthenticate/"
    form = next(f for f in parse(url, client.get(url).content.decode()).forms if f.action == url)
    response = client.post(url, {**dict(form.data()), "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    if persona.view_as:
        tenant = Tenant.objects.get(slug=persona.view_as)
        page = f"/staff/tenants/{tenant.pk}/"
        forms = parse(page, client.get(page).content.decode()).forms
        view_as = next(f for f in forms if f.route == "staff:view_as")
        assert client.post(view_as.action, dict(view_as.data())).status_code == 302


def _restore(walker: Walker, persona: Persona) -> str:
    """After a form: MFA back on, signed in, viewing as before; says what had changed."""
    if persona.email is None:
        return ""
    changed = ""
    user = User.objects.get(email=persona.email)
    needs_mfa = user.is_staff or persona.email.startswith("admin@")
    if needs_mfa and not user.authenticator_set.exists():
        add_totp(user)
        changed = "removed the persona's authenticator"
    session = walker.client.session
    viewing = "staff_view_as_tenant" in session
    if "_auth_user_id" not in session or viewing != bool(persona.view_as):
        walker.client.logout()
        sign_in(walker.client, persona)
        changed = "signed the persona out" if "_auth_user_id" not in session else "view-as"
    return changed


# --- checks on every response ---------------------------------------------------------------------


def _styled(url: str, response: HttpResponse, text: str) -> str:
    if "text/html" in response.get("Content-Type", "") and "<html" in text:
        if "/static/css/app" not in text:
            return "page is not styled"
        if "<h1" not in text:
            return "page has no heading"
    return ""


def _reasons_in_words(url: str, response: HttpResponse, text: str) -> str:
    if "text/html" not in response.get("Content-Type", ""):
        return ""  # CSV exports keep the codes
    # What a person reads: the text between tags (attributes, where titles keep the code, gone).
    shown = re.sub(r"<(script|style)\b.*?</\1>|<[^>]*>", " ", text, flags=re.S)
    found = RAW_REASONS.search(shown)
    return f"a raw reason code is shown: “{found.group(0)}”" if found else ""


def _no_msc_servers(url: str, response: HttpResponse, text: str) -> str:
    if url.startswith("/staff/"):  # the staff console is the platform's, not the tenant's
        return ""
    found = MSC_WORDS.search(text)
    return f"a modern tenant is shown “{found.group(0)}”" if found else ""


# --- the walk -------------------------------------------------------------------------------------


def _kinds(forms: list[Form]) -> list[list[Form]]:
    """The forms grouped by kind, in the order found, with the ``LAST`` kinds at the end."""
    groups: dict[tuple, list[Form]] = {}
    for form in forms:
        groups.setdefault(form.kind, []).append(form)
    rank = {name: n + 1 for n, name in enumerate(LAST)}
    return sorted(groups.values(), key=lambda group: rank.get(group[0].route, 0))


def _current(walker: Walker, group: list[Form]) -> Form | str:
    """A form of this kind as its page renders it now: what earlier forms changed shows, and
    its CSRF token is the session's (a fresh sign-in rotates it). Another row's form of the
    same kind stands in for one whose row is gone; a string says why there is none."""
    why = []
    for url in dict.fromkeys(form.page for form in group):
        page = walker.reload(url)
        if isinstance(page, str):
            why.append(page)
            continue
        for form in page.forms:
            if form.kind == group[0].kind:
                return form
        why.append(f"no longer on {url}")
    return "; ".join(why)


Done = list[tuple[Form, Visit | str]]


def _submit_all(walker: Walker, persona: Persona) -> Done:
    """Each kind of form as rendered then filled in, each plain then with htmx; a string where
    it could not be submitted."""
    done: Done = []
    numbers = count(1)
    for group in _kinds(walker.forms):
        for filled in (False, True):
            if filled and (persona.view_as or group[0].filled(0) is None):
                # Nothing to fill in, or nothing to gain: read-only refuses whatever is typed.
                break
            for htmx in (False, True):
                if group[0].htmx_only and not htmx:
                    continue  # without JavaScript there is nothing to submit
                form = _current(walker, group)
                if isinstance(form, str):
                    done.append((group[0], form))
                    continue
                if filled:
                    form = form.filled(next(numbers)) or form
                visit = walker.submit(form, htmx=htmx)
                done.append((form, visit))
                changed = _restore(walker, persona)
                if changed and form.route not in LAST and not visit.problem:
                    # Only the LAST forms may change the session: the rest of the walk would
                    # quietly go on as someone else.
                    visit.problem = f"this form {changed}"
    return done


def _tail(trace: str, lines: int = 12) -> str:
    """The end of a traceback (the report file holds all of it)."""
    return "\n" + "\n".join(trace.rstrip().splitlines()[-lines:]) if trace else ""


def _page_problems(name: str, visits: list[Visit]) -> list[str]:
    problems = []
    for visit in visits:
        status = visit.landed_status if visit.landed else visit.status
        if not visit.problem and not (status == 200 and visit.status in (200, 301, 302, 303)):
            visit.problem = f"{name} should get this page, not {visit.status}"
        if visit.problem:
            problems.append(visit.line() + _tail(visit.trace))
    return problems


def _form_problems(name: str, persona: Persona, done: Done) -> list[str]:
    problems = []
    for form, visit in done:
        if isinstance(visit, str):
            continue
        refusal = expected_refusal(persona, form, htmx=visit.how.startswith("htmx"))
        if visit.problem:
            pass
        elif refusal:
            status, words = refusal
            if visit.status != status or words not in visit.text:
                visit.problem = f"{name} should be refused here ({status}, “{words}”)"
        elif visit.status < 400:
            if visit.landed and visit.landed_status not in (200, 0):
                visit.problem = "the form's redirect lands on an error"
        elif visit.status not in (400, 422) or "refused with a message" not in visit.how:
            visit.problem = f"{name} should not get {visit.status} from a form shown to them"
        if visit.problem:
            problems.append(visit.line() + _tail(visit.trace))
    return problems


def _report(name: str, walker: Walker, done: Done) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.txt"
    kinds = len({form.kind for form, _ in done})
    lines = [f"# {name}: {len(walker.pages)} pages, {kinds} kinds of form, every request:"]
    lines += [visit.line() + ("\n" + visit.trace if visit.trace else "") for visit in walker.visits]
    lines += ["", "# not submitted, and why:"]
    lines += [
        f"{form.method.upper()} {form.action} “{form.label}”: {visit}"
        for form, visit in done
        if isinstance(visit, str)
    ]
    elsewhere = {href: why for page in walker.pages.values() for href, why in page.elsewhere}
    lines += ["", "# links not followed, and why:"]
    lines += [f"{href}: {why}" for href, why in sorted(elsewhere.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(PERSONAS))
def test_walking_every_page_and_form_gives_each_persona_what_it_should(
    demo_world: SmtpServer, name: str
) -> None:
    persona = PERSONAS[name]
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    if persona.email:
        sign_in(client, persona)
    checks = [_styled, _reasons_in_words, *([_no_msc_servers] if persona.modern else [])]
    walker = Walker(name, client, checks)
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        walker.walk("/", depth=DEPTH)
        pages = list(walker.visits)
        done = _submit_all(walker, persona)
    report = _report(name, walker, done)

    later = [v for v in walker.visits[len(pages) :] if v.how in ("reload", "redirect")]
    problems = (
        _page_problems(name, pages)
        + _form_problems(name, persona, done)
        + [v.line() + _tail(v.trace) for v in later if v.problem]
    )
    assert not problems, f"{name} (every request: {report}):\n" + "\n".join(problems)
    assert len(walker.pages) >= persona.min_pages, report
    through = {
        form.route
        for form, visit in done
        if isinstance(visit, Visit) and visit.status < 400 and not visit.problem
    }
    missing = {route for route, who in LOCKING_PAGES.values() if who == name} - through
    assert not missing, f"{name} never got through {sorted(missing)} (see {report})"


def test_every_locking_service_is_walked_or_explained() -> None:
    """``LOCKING_PAGES`` and ``LOCKING_ELSEWHERE`` name every function that locks rows."""
    locking = {f.key for f in collect(app_sources()) if f.bare_locks or f.covered_locks}
    assert locking == set(LOCKING_PAGES) | set(LOCKING_ELSEWHERE)
    assert {who for _, who in LOCKING_PAGES.values()} <= set(PERSONAS)


PAGE = """<html><body hx-headers='{"x-csrftoken": "tok"}'>
<a href="/outbox/?page=2">next</a> <a href="https://example.com/">out</a> <a href="#main">skip</a>
<div hx-get="/analytics/live/newer/?after=5" hx-trigger="every 4s"></div>
<form method="post" action="/campaigns/7/steps/" hx-post="/campaigns/7/steps/">
  <input type="hidden" name="csrfmiddlewaretoken" value="abc">
  <select name="template" required><option value="">---------</option>
    <option value="3">Intro</option><option value="4">Follow-up</option></select>
  <input type="number" name="delay_days" value="2" required min="0">
  <input type="checkbox" name="stop" checked> <input type="checkbox" name="skip" value="1">
  <input type="radio" name="mode" value="a"><input type="radio" name="mode" value="b" checked>
  <input type="text" name="off" value="x" disabled>
  <textarea name="body">
Hello</textarea>
  <button type="submit">Add step</button>
  <button type="submit" name="undo" value="1" hx-post="/campaigns/7/preview/">Preview</button>
</form>
<form method="get"><input type="search" name="q" value="pat"><button>Search</button></form>
<form method="post" action="/settings/users/"><input type="email" name="email" required>
  <select name="role"><option value="rep" selected>Rep</option><option value="admin">Admin</option>
  </select></form>
<button hx-delete="/messages/9/" hx-vals='{"why": "spam"}'>Delete</button>
</body></html>"""


def test_the_walk_reads_a_page_as_a_browser_would() -> None:
    page = parse("/campaigns/7/", PAGE)
    assert page.links == ["/outbox/?page=2"]
    assert page.elsewhere == [
        ("https://example.com/", "leaves the site"),
        ("#main", "a place on the same page"),
    ]
    assert page.hx_gets == ["/analytics/live/newer/?after=5"]
    step, preview, search, invite, delete = page.forms
    rendered = (
        ("csrfmiddlewaretoken", "abc"),
        ("template", ""),  # a browser sends the first option when none is selected
        ("delay_days", "2"),
        ("stop", "on"),
        ("mode", "b"),
        ("body", "Hello"),
    )
    assert (step.method, step.action, step.fields, step.button) == (
        "post",
        "/campaigns/7/steps/",
        rendered,
        None,
    )
    assert step.csrf_header == "tok" and step.label == "Add step"
    assert dict(step.filled(1).fields)["template"] == "3"
    assert preview.button == ("undo", "1") and preview.hx_action == "/campaigns/7/preview/"
    assert preview.action == "/campaigns/7/steps/" and preview.kind != step.kind
    assert (search.method, search.action, search.fields) == (
        "get",
        "/campaigns/7/",
        (("q", "pat"),),
    )
    assert search.filled(1) is None  # nothing required was left empty
    assert dict(invite.filled(4).fields) == {"email": "walk4@prospect.example", "role": "rep"}
    assert (delete.method, delete.action, delete.fields, delete.htmx_only) == (
        "delete",
        "/messages/9/",
        (("why", "spam"),),
        True,
    )
    # Rows of one kind of form share a kind: one per row would be submitted once.
    other_row = parse("/campaigns/8/", PAGE.replace("/7/", "/8/")).forms[0]
    assert other_row.kind == step.kind
