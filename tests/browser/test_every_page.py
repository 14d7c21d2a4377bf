"""Every page, as each persona, in Chromium: axe-core finds no serious or critical
accessibility violation, and at phone width nothing scrolls sideways.

The pages are the URLconf's: every route without arguments, and every object route of the
security suite (``tests/security/test_cross_tenant.CASES``) on a world holding one of each
object, each answered 200 with HTML to the persona before the browser opens it. A URL that is
not such a page for the persona must answer as ``NOT_PAGES`` says; any other answer fails the
test, so no page is dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import Resolver404, resolve, reverse

from accounts.models import User
from tests.browser.conftest import new_page, save_steps, step
from tests.routes import all_routes
from tests.security.conftest import World, fresh_client, world  # noqa: F401
from tests.security.test_cross_tenant import CASES

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
SKIP = {"account_logout", "account_reauthenticate", "mfa_reauthenticate"}
PHONE = {"width": 390, "height": 844}
# The innermost elements that reach past the right edge of the screen.
WIDEST = """() => {
    const over = e => e.getBoundingClientRect().right > window.innerWidth + 1;
    const name = e => e.tagName.toLowerCase() +
        (e.className ? '.' + String(e.className).trim().split(/\\s+/).join('.') : '');
    return [...document.querySelectorAll('body *')]
        .filter(e => over(e) && ![...e.children].some(over)).slice(0, 3).map(name);
}"""


# What a persona gets from the URLs this test is given, when it is not a page. A redirect is
# followed and judged where it lands; a route answering 405 without GET in its Allow header
# takes POSTs only (its form is on a page checked here). Anything else fails.
ANY = "*"
NOT_PAGES: dict[tuple[str, str], tuple[int, str]] = {
    (ANY, "health"): (200, "JSON for load balancers"),
    (ANY, "analytics:template_csv"): (200, "a CSV download"),
    (ANY, "analytics:campaign_csv"): (200, "a CSV download"),
    (ANY, "analytics:reason_csv"): (200, "a CSV download"),
    (ANY, "analytics:domain_csv"): (200, "a CSV download"),
    (ANY, "analytics:provider_csv"): (200, "a CSV download"),
    (ANY, "analytics:template_bounces_csv"): (200, "a CSV download"),
    ("admin", "sending:suppressions_export"): (200, "a CSV download"),
    ("rep", "sending:suppressions_export"): (403, "tenant admins only"),
    (ANY, "analytics:live_feed_newer"): (200, "the live feed's htmx fragment"),
    (ANY, "bounces:scan_status"): (200, "a scan card's htmx fragment"),
    (ANY, "msc_admin.views.not_offered"): (404, "Google One Tap sign-in is switched off"),
    (ANY, "google_login"): (404, "no Google OAuth client is configured here"),
    (ANY, "google_callback"): (404, "no Google OAuth client is configured here"),
    (ANY, "microsoft_login"): (404, "no Microsoft OAuth client is configured here"),
    (ANY, "microsoft_callback"): (404, "no Microsoft OAuth client is configured here"),
    (ANY, "socialaccount_login_error"): (401, "allauth's page for a refused provider sign-in"),
    ("rep", "accounts:users"): (403, "tenant admins only"),
    ("rep", "channels:team"): (403, "tenant admins only"),
    ("rep", "channels:team_smtp_edit"): (403, "tenant admins only"),
    ("rep", "channels:audit"): (403, "tenant admins only"),
    ("rep", "bounces:spikes"): (403, "tenant admins only"),
    ("rep", "bounces:spike"): (403, "tenant admins only"),
    ("rep", "mfa_deactivate_totp"): (404, "the rep has no authenticator app to remove"),
    ("rep", "mfa_view_recovery_codes"): (404, "the rep has no recovery codes"),
    ("rep", "mfa_download_recovery_codes"): (404, "the rep has no recovery codes"),
    ("admin", "mfa_view_recovery_codes"): (404, "no recovery codes generated yet"),
    ("admin", "mfa_download_recovery_codes"): (404, "no recovery codes generated yet"),
    ("admin", "sending:template_edit"): (404, "the rep's private template"),
    ("admin", "sending:contact_import_status"): (404, "the rep's own contact import"),
    ("admin", "bounces:scan_status"): (404, "the rep's own mailbox"),
}


def _expected(persona: str, name: str) -> tuple[int, str] | None:
    return NOT_PAGES.get((persona, name)) or NOT_PAGES.get((ANY, name))


def _answer(client: Client, url: str) -> tuple[str, HttpResponse]:
    """Where a GET of ``url`` lands, following redirects, and its answer."""
    response = client.get(url)
    for _ in range(5):
        if response.status_code not in (301, 302, 303, 307, 308):
            break
        url = urlsplit(response["Location"]).path
        response = client.get(response["Location"])
    return url, response


def _pages(client: Client, objects: World, staff: bool, persona: str) -> list[str]:
    urls = [
        r.route
        for r in all_routes()
        if not r.params and r.name not in SKIP and r.route.startswith("/staff/") == staff
    ]
    if not staff:
        urls += [reverse(name, kwargs=of(objects)) for name, (of, _) in CASES.items()]
    found, unexpected = [], []
    for url in urls:
        landed, response = _answer(client, url)
        name = route_name(landed)
        html = response["Content-Type"].startswith("text/html")
        if response.status_code == 200 and html and b"<html" in response.content:
            if landed == url:  # a redirect's target is checked as itself, when it is given
                found.append(url)
            continue
        expected = _expected(persona, name)
        if response.status_code == 405 and "GET" not in response.get("Allow", ""):
            continue  # takes POSTs only
        if expected and expected[0] == response.status_code:
            continue
        unexpected.append(f"{url} -> {landed} answered {response.status_code} ({name})")
    assert not unexpected, f"{persona} gets these instead of pages:\n" + "\n".join(unexpected)
    return found


def route_name(path: str) -> str:
    try:
        match = resolve(path)
    except Resolver404:
        return "(no route)"
    return match.view_name or path


def _axe(page) -> list[str]:
    page.add_script_tag(content=AXE)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document);
            return {passes: r.passes.length, violations: r.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                          v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))};
        }"""
    )
    assert result["passes"] > 10  # axe really looked at the page
    return list(result["violations"])


@pytest.mark.parametrize("persona", ["visitor", "rep", "admin", "staff"])
def test_every_page_passes_axe_and_fits_a_phone(
    browser,
    live_url: str,
    world: World,  # noqa: F811
    staff_user: User,
    persona: str,
    request: pytest.FixtureRequest,
) -> None:
    user = {"rep": world.rep, "admin": world.admin, "staff": staff_user}.get(persona)
    client = fresh_client(user) if user else Client()
    pages = _pages(client, world, staff=persona == "staff", persona=persona)
    assert len(pages) >= {"visitor": 3, "staff": 5}.get(persona, 15), pages
    cookies = (
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_url}]
        if user
        else []
    )
    problems: dict[str, list[str]] = {}
    for viewport in ({"width": 1280, "height": 900}, PHONE):
        # axe-core is injected as a script: the test browser alone skips the page's CSP for it.
        context = browser.new_context(viewport=viewport, bypass_csp=True)
        context.add_cookies(cookies)
        page = new_page(context)
        try:
            for url in pages:
                page.goto(live_url + url)
                where = f"{url} at {viewport['width']}px"
                step(page, where)
                if viewport is PHONE:
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if overflow > 0:
                        wide = page.evaluate(WIDEST)
                        problems.setdefault(where, []).append(
                            f"scrolls sideways {overflow}px; too wide: {wide}"
                        )
                else:
                    found = _axe(page)
                    if found:
                        problems.setdefault(where, []).extend(found)
        finally:
            if problems:
                save_steps(page, f"{request.node.name}-{viewport['width']}")
            context.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
