"""Signing in, the htmx Users page and the phone layout, in a real browser."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Role, Tenant
from tests.conftest import add_totp, totp_code
from tests.factories import PASSWORD, MembershipFactory, TenantFactory

pytestmark = pytest.mark.browser


def _sign_in(page, live_url: str, email: str) -> None:
    page.goto(f"{live_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")


@pytest.fixture
def acme_people(live_url: str) -> dict[str, object]:
    acme = TenantFactory(name="Acme", slug="acme")
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    secret = add_totp(admin)
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    return {"tenant": acme, "admin": admin, "secret": secret, "rep": rep}


def test_a_rep_signs_in_and_sees_a_styled_dashboard(page, live_url: str, acme_people) -> None:
    _sign_in(page, live_url, "rep@acme.test")
    page.wait_for_url(f"{live_url}/")
    assert page.locator("h1").inner_text() == "Acme"
    # The stylesheet loaded (hashed, through whitenoise) and htmx ran under the strict CSP.
    topbar = page.locator("header.topbar")
    assert topbar.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(15, 23, 42)"
    assert page.evaluate("typeof window.htmx") == "object"
    page.click("text=Delivery channels")
    page.wait_for_url(f"{live_url}/channels/")
    # What each kind supports is folded away below the person's own cards: one click opens it.
    assert not page.locator("#kind-gmail").is_visible()
    page.get_by_text("What each channel supports").click()
    assert page.locator("#kind-gmail").is_visible()
    assert page.locator("#kind-msc_legacy").count() == 0
    assert page.console_errors == []


def test_an_admin_signs_in_with_totp_and_changes_a_role_in_place(
    page,
    live_url: str,
    acme_people,
) -> None:
    _sign_in(page, live_url, "admin@acme.test")
    page.wait_for_url(f"{live_url}/accounts/2fa/authenticate/")
    code = totp_code(acme_people["secret"])
    page.fill("input[name=code]", code)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_url}/")

    page.goto(f"{live_url}/settings/users/")
    rep = acme_people["rep"]
    row = page.locator(f"#member-{rep.membership.pk}")
    page.evaluate("window.__noReload = true")
    row.locator("select[name=role]").select_option("admin")
    row.locator("button", has_text="Change").click()
    page.locator("#toast").wait_for(state="visible")
    # The row was swapped by htmx: the page never reloaded.
    assert page.evaluate("window.__noReload") is True
    assert page.locator(f"#member-{rep.membership.pk} select[name=role]").input_value() == "admin"
    assert Membership.objects.get(pk=rep.membership.pk).role == Role.ADMIN
    assert page.console_errors == []


def test_the_users_page_fits_a_phone(browser, live_url: str, acme_people) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    admin = acme_people["admin"]
    # Sign in as the rep for the dashboard, and check both pages for horizontal overflow.
    _sign_in(page, live_url, "rep@acme.test")
    page.wait_for_url(f"{live_url}/")
    for path in ["/", "/channels/", "/settings/", "/analytics/"]:
        page.goto(live_url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
    assert admin.is_active
    context.close()


def test_a_legacy_tenant_sees_msc_servers(page, live_url: str) -> None:
    globex: Tenant = TenantFactory(name="Globex", slug="globex", legacy_toutapp=True)
    MembershipFactory(tenant=globex, role=Role.REP, user__email="rep@globex.test")
    _sign_in(page, live_url, "rep@globex.test")
    page.wait_for_url(f"{live_url}/")
    page.goto(f"{live_url}/channels/")
    page.get_by_text("What each channel supports").click()
    card = page.locator("#kind-msc_legacy")
    assert card.is_visible()
    assert "not signed with DKIM" in card.inner_text()


def test_a_modern_tenant_never_sees_msc_servers(browser, live_url: str, acme_people) -> None:
    """Neither a rep nor an admin of a modern tenant meets MSC servers anywhere they go."""
    from tests.security.conftest import fresh_client

    for who in ("rep", "admin"):
        client = fresh_client(acme_people[who])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_url}]
        )
        page = context.new_page()
        pages = ["/", "/channels/", "/outbox/", "/outbox/compose/", "/analytics/"]
        if who == "admin":
            pages += ["/channels/team/", "/channels/team/smtp/", "/settings/users/"]
        for path in pages:
            page.goto(live_url + path)
            text = page.inner_text("body")
            assert page.locator("h1").count() == 1, path
            assert "MSC server" not in text and "msc_legacy" not in page.content(), (who, path)
        # Choosing the legacy channel by hand is refused as well.
        assert client.post("/channels/legacy/").status_code in (403, 404)
        context.close()
