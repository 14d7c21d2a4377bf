"""Every page, as each persona, in Chromium: axe-core finds no serious or critical
accessibility violation, and at phone width nothing scrolls sideways.

The pages are the URLconf's: every route without arguments, and every object route of the
security suite (``tests/security/test_cross_tenant.CASES``) on a world holding one of each
object, each answered 200 with HTML to the persona before the browser opens it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

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


def _pages(client: Client, objects: World, staff: bool) -> list[str]:
    urls = [
        r.route
        for r in all_routes()
        if not r.params and r.name not in SKIP and r.route.startswith("/staff/") == staff
    ]
    if not staff:
        urls += [reverse(name, kwargs=of(objects)) for name, (of, _) in CASES.items()]
    found = []
    for url in urls:
        response = client.get(url)
        html = response["Content-Type"].startswith("text/html")
        # Whole pages only: fragments are checked inside the pages that show them.
        if response.status_code == 200 and html and b"<html" in response.content:
            found.append(url)
    return found


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
    pages = _pages(client, world, staff=persona == "staff")
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
