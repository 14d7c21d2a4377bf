"""The staff console through the client: the gate, the MSC pool (a real SMTP handshake), legacy
mail through the pool, tenants, the legacy report and the audit log."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test import Client, TestCase
from django.urls import URLPattern, get_resolver, reverse

from accounts.models import Membership, Role, Tenant, User
from analytics import rollups
from bounces.selectors import outcomes
from channels import services as channel_services
from channels.models import MscServer
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from sending import pipeline
from sending.models import Hold, MessageStatus
from staff.middleware import ReadOnlyViewAsMiddleware
from staff.models import StaffAuditEvent
from tests.mailservers import free_port, smtp_server
from tests.routes import all_routes
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db

GOOD = {
    "name": "msc-relay-1",
    "host": "localhost",
    "port": "587",
    "security": "starttls",
    "auth_method": "PLAIN",
    "username": "pool",
    "password": "pool-secret",
}


def _staff_urls(server: MscServer) -> list[str]:
    patterns = get_resolver().url_patterns
    staff = next(p for p in patterns if getattr(p, "app_name", None) == "staff")
    urls = []
    for pattern in staff.url_patterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {"pk": server.pk} if "pk" in pattern.pattern.converters else {}
        urls.append(reverse(f"staff:{pattern.name}", kwargs=kwargs))
    return [*urls, "/django-admin/", "/django-admin/accounts/user/"]


@pytest.mark.parametrize("persona", ["rep_client", "admin_client", "outsider_client", "client"])
def test_every_staff_url_answers_404_to_everyone_else(
    request: pytest.FixtureRequest, persona: str
) -> None:
    server = MscServer.objects.create(name="x", host="localhost", username="u")
    client = request.getfixturevalue(persona)
    for url in _staff_urls(server):
        assert client.get(url).status_code == 404, url
        assert client.post(url, GOOD).status_code == 404, url
    assert MscServer.objects.count() == 1 and not StaffAuditEvent.objects.exists()


def test_staff_must_have_confirmed_their_password_recently(staff_user: User) -> None:
    client = Client()
    client.force_login(staff_user)  # signed in, but no recent password confirmation
    response = client.get(reverse("staff:servers"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_reauthenticate')}?next=%2Fstaff%2Fservers%2F"
    response = client.post(reverse("staff:servers"), GOOD)
    assert response.status_code == 302 and not MscServer.objects.exists()
    assert client.get("/django-admin/").status_code == 302


def test_adding_a_server_checks_the_form_and_seals_the_password(
    staff_client: Client, staff_user: User
) -> None:
    url = reverse("staff:servers")
    bad = staff_client.post(url, {**GOOD, "port": "465", "password": ""})
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "Port 465 speaks TLS from the first byte" in page
    assert "Enter the password" in page
    assert not MscServer.objects.exists()
    response = staff_client.post(url, GOOD, follow=True)
    assert "msc-relay-1 (localhost:587) added" in response.content.decode()
    server = MscServer.objects.get()
    assert server.password() == "pool-secret" and "pool-secret" not in server.secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM staff_mscserver")
        assert "pool-secret" not in cursor.fetchone()[0]
    event = StaffAuditEvent.objects.get()
    assert (event.actor, event.action) == (staff_user, "added MSC server")
    assert "pool-secret" not in str(event.details) and event.details["password"].startswith(
        "changed"
    )
    # Editing with the password left blank keeps it.
    edit = reverse("staff:server_edit", args=[server.pk])
    page = staff_client.get(edit).content.decode()
    assert "pool-secret" not in page and "Stored. Leave blank to keep it." in page
    staff_client.post(edit, {**GOOD, "name": "msc-relay-a", "password": ""})
    server.refresh_from_db()
    assert server.name == "msc-relay-a" and server.password() == "pool-secret"
    assert StaffAuditEvent.objects.filter(action="changed MSC server").get().details == {
        "name": {"from": "msc-relay-1", "to": "msc-relay-a"}
    }


def test_the_health_check_is_a_real_handshake_and_its_result_is_kept(
    staff_client: Client, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"pool": "pool-secret"}) as relay:
        staff_client.post(reverse("staff:servers"), {**GOOD, "port": str(relay.port)})
        server = MscServer.objects.get()
        page = staff_client.post(
            reverse("staff:server_check", args=[server.pk]), follow=True
        ).content.decode()
        assert "Connection, TLS and authentication succeeded." in page
        assert relay.received.auth_attempts == [("PLAIN", "pool")]
    server.refresh_from_db()
    assert server.last_check_ok is True and server.last_check_at is not None
    # The server is gone now: the next check says so and is kept too.
    staff_client.post(reverse("staff:server_check", args=[server.pk]))
    server.refresh_from_db()
    assert server.last_check_ok is False and server.last_check_message
    page = staff_client.get(reverse("staff:servers")).content.decode()
    assert "failed" in page and read(server.last_check_message)[:30] in page
    assert StaffAuditEvent.objects.filter(action="checked MSC server").count() == 2


def test_legacy_mail_goes_through_the_pool_and_waits_when_it_is_empty(
    staff_client: Client, globex: Tenant, outsider_user: User, certs: Certificates
) -> None:
    channel_services.channel_select_legacy(tenant=globex, actor=outsider_user, owner=outsider_user)
    identity = channel_services.identity_ensure_default(user=outsider_user, tenant=globex)
    waiting = queue_message(globex, outsider_user, identity)
    assert pipeline.send_message(waiting.pk) == f"held:{Hold.RETRY}"
    waiting.refresh_from_db()
    assert "No MSC server is available right now." in waiting.status_detail

    with smtp_server(mode="starttls", cert=certs.trusted, users={"pool": "pool-secret"}) as relay:
        staff_client.post(reverse("staff:servers"), {**GOOD, "port": str(relay.port)})
        server = MscServer.objects.get()
        message = queue_message(globex, outsider_user, identity, to="sam@prospect.test")
        assert pipeline.send_message(message.pk) == "sent"
        assert [m["to"] for m in relay.received.messages] == [["sam@prospect.test"]]
        # Disabled: nothing goes to it any more.
        staff_client.post(reverse("staff:server_enabled", args=[server.pk]), {"enabled": "0"})
        later = queue_message(globex, outsider_user, identity, to="kim@prospect.test")
        assert pipeline.send_message(later.pk) == f"held:{Hold.RETRY}"
        assert len(relay.received.messages) == 1
    assert list(StaffAuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "added MSC server",
        "disabled MSC server",
    ]
    assert later.__class__.objects.get(pk=later.pk).status == MessageStatus.QUEUED


def test_a_dead_pool_server_is_skipped_while_a_healthy_one_is_left(
    staff_client: Client, staff_user: User, certs: Certificates
) -> None:
    from channels.pool import pick_server
    from staff import services

    dead = MscServer.objects.create(name="dead", host="localhost", port=free_port(), username="p")
    dead.set_password("x")
    dead.save()
    services.server_check(actor=staff_user, server=dead)
    alive = MscServer.objects.create(name="alive", host="localhost", port=587, username="p")
    picks = {pick_server(f"p{n}@x.test") for n in range(20)}
    assert picks == {alive}


def test_tenants_show_channel_mix_volume_and_search(
    staff_client: Client, acme: Tenant, globex: Tenant, rep_user: User, outsider_user: User
) -> None:
    from tests.sending.conftest import gmail_channel

    gmail_channel(acme, rep_user)
    channel_services.channel_select_legacy(tenant=globex, actor=outsider_user, owner=outsider_user)
    page = staff_client.get(reverse("staff:home")).content.decode()
    rows = page[page.index('id="tenants"') :]
    acme_row = rows[rows.index("Acme") : rows.index("</tr>", rows.index("Acme"))]
    assert '<td data-label="Gmail">1</td>' in acme_row
    assert '<td data-label="MSC servers">0</td>' in acme_row
    globex_row = rows[rows.index("Globex") : rows.index("</tr>", rows.index("Globex"))]
    assert '<td data-label="MSC servers">1</td>' in globex_row and "legacy" in globex_row
    found = staff_client.get(reverse("staff:home") + "?q=glob").content.decode()
    assert "Globex" in found and "Acme" not in found
    assert (
        "No tenant matches" in staff_client.get(reverse("staff:home") + "?q=zzz").content.decode()
    )


def test_creating_a_tenant_invites_its_first_admin(
    staff_client: Client, staff_user: User, rep_user: User
) -> None:
    url = reverse("staff:tenant_create")
    bad = staff_client.post(url, {"name": "Initech", "slug": "acme", "admin_email": rep_user.email})
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "Another tenant already uses this slug." in page
    assert "This address already has an msc-admin account." in page
    with TestCase.captureOnCommitCallbacks(execute=True):
        staff_client.post(
            url, {"name": "Initech", "slug": "initech", "admin_email": "Bill@Initech.test"}
        )
    tenant = Tenant.objects.get(slug="initech")
    membership = Membership.objects.get(tenant=tenant)
    assert (membership.user.email, membership.role) == ("bill@initech.test", Role.ADMIN)
    (invite,) = mail.outbox
    assert invite.to == ["bill@initech.test"]
    event = StaffAuditEvent.objects.get(action="created tenant")
    assert (event.actor, event.tenant, event.details["first_admin"]) == (
        staff_user,
        tenant,
        "bill@initech.test",
    )


def test_the_legacy_report_counts_msc_mail_and_its_bounces(
    staff_client: Client, globex: Tenant, outsider_user: User
) -> None:
    from django.utils import timezone

    from sending.models import Message

    msc = channel_services.channel_select_legacy(
        tenant=globex, actor=outsider_user, owner=outsider_user
    )
    identity = channel_services.identity_ensure_default(user=outsider_user, tenant=globex)
    for n in range(4):
        message = queue_message(globex, outsider_user, identity, to=f"p{n}@x.test")
        status = MessageStatus.BOUNCED if n == 0 else MessageStatus.SENT
        Message.objects.filter(pk=message.pk).update(status=status, sent_at=timezone.now())
    rollups.rebuild([globex.pk], outcomes=outcomes)
    page = staff_client.get(reverse("staff:legacy")).content.decode()
    row = page[page.index("Globex") : page.index("</tr>", page.index("Globex"))]
    assert '<td data-label="Users on MSC">1</td>' in row
    assert '<td data-label="MSC mail (30 d)">4</td>' in row
    assert msc.pk  # the MSC channel is the one counted


def test_the_audit_log_is_searchable(
    staff_client: Client, staff_user: User, acme: Tenant, globex: Tenant
) -> None:
    from staff import services

    services.audit(actor=staff_user, action="flagged legacy", tenant=globex, subject="Globex")
    services.audit(actor=staff_user, action="created tenant", tenant=acme, subject="Acme")
    url = reverse("staff:audit")
    page = staff_client.get(url + "?q=flagged").content.decode()
    assert "flagged legacy" in page and "created tenant" not in page
    page = staff_client.get(url + f"?tenant={acme.pk}").content.decode()
    assert "created tenant" in page and "flagged legacy" not in page
    assert "No staff action matches" in staff_client.get(url + "?q=nothing").content.decode()


def test_view_as_is_read_only_with_a_banner_and_audited(
    staff_client: Client, staff_user: User, globex: Tenant, outsider_user: User
) -> None:
    from analytics.models import Notification
    from channels.models import Channel

    channel_services.channel_select_legacy(tenant=globex, actor=outsider_user, owner=outsider_user)
    response = staff_client.post(reverse("staff:view_as", args=[globex.pk]), follow=True)
    assert "Viewing Globex as staff: read-only." in response.content.decode()
    for name in ("sending:outbox", "analytics:overview", "channels:team", "accounts:users"):
        page = staff_client.get(reverse(name))
        assert page.status_code == 200, name
        assert "Viewing Globex as staff" in page.content.decode()
    assert "admin@globex.test" in staff_client.get(reverse("accounts:users")).content.decode()

    before = (Channel.objects.count(), Notification.objects.count(), MscServer.objects.count())
    routes = [r.sample() for r in all_routes(include_admin=True)]
    assert len(routes) > 40
    refused = [path for path in routes if path not in ReadOnlyViewAsMiddleware.ALLOWED]
    for path in refused:
        response = staff_client.post(path, {"name": "x", "legacy": "0"})
        assert response.status_code == 302, path  # back, with the reason
    hx = staff_client.post(reverse("channels:throttling"), HTTP_HX_REQUEST="true")
    assert hx.status_code == 403
    assert (Channel.objects.count(), Notification.objects.count(), MscServer.objects.count()) == (
        before
    )
    globex.refresh_from_db()
    assert globex.legacy_toutapp  # the staff page's own write was refused too

    staff_client.post(reverse("staff:view_as_stop"))
    assert staff_client.get(reverse("sending:outbox"))["Location"] == reverse("staff:home")
    events = list(StaffAuditEvent.objects.order_by("pk").values_list("action", "tenant__name"))
    assert events[0] == ("started viewing as tenant", "Globex")
    assert events[-1] == ("stopped viewing as tenant", "Globex")
    assert events[1:-1] == [("refused while viewing as tenant", "Globex")] * (len(refused) + 1)


def test_only_staff_can_view_as(admin_client: Client, globex: Tenant) -> None:
    assert admin_client.post(reverse("staff:view_as", args=[globex.pk])).status_code == 404
    # A tenant admin whose session somehow carries the key sees only their own tenant.
    session = admin_client.session
    session["staff_view_as_tenant"] = globex.pk
    session.save()
    page = admin_client.get(reverse("accounts:users")).content.decode()
    assert "Viewing Globex" not in page and "admin@globex.test" not in page


def test_a_change_in_the_django_admin_joins_the_staff_audit_log(
    staff_client: Client, staff_user: User, acme: Tenant
) -> None:
    url = f"/django-admin/accounts/tenant/{acme.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    response = staff_client.post(url, {"name": "Acme Corp", "slug": "acme", "legacy_toutapp": ""})
    assert response.status_code == 302, response.content[:300]
    acme.refresh_from_db()
    assert acme.name == "Acme Corp"
    event = StaffAuditEvent.objects.get()
    assert (event.actor, event.action, event.subject) == (
        staff_user,
        "Django admin: changed accounts.tenant",
        "Acme Corp",
    )
    # The change is kept as the admin records it and worded when read, in the reader's words.
    assert set(event.details) == {"admin_change"}
    User.objects.filter(pk=staff_user.pk).update(language="pt-br")
    log = staff_client.get(reverse("staff:audit")).content.decode()
    assert "Admin do Django: alterou accounts.tenant: Acme Corp" in log
    assert "Alterado Nome." in log  # Django's own words for the change, in Portuguese


def test_the_tenant_list_and_its_detail_page_count_active_users_the_same_way(
    staff_client: Client, globex: Tenant, outsider_user: User
) -> None:
    from tests.factories import MembershipFactory

    MembershipFactory(tenant=globex, user__email="rep@globex.test")
    MembershipFactory(tenant=globex, user__email="gone@globex.test", user__is_active=False)
    home = staff_client.get(reverse("staff:home")).content.decode()
    row = home[home.index("Globex") : home.index("</tr>", home.index("Globex"))]
    assert '<td data-label="Active users">2</td>' in row
    detail = staff_client.get(reverse("staff:tenant", args=[globex.pk])).content.decode()
    assert "<dt>Active users</dt><dd>2</dd>" in detail


def test_legacy_report_tenant_names_link_to_their_staff_page(
    staff_client: Client, globex: Tenant
) -> None:
    page = staff_client.get(reverse("staff:legacy")).content.decode()
    link = reverse("staff:tenant", args=[globex.pk])
    assert f'<a href="{link}">Globex</a>' in page
    assert staff_client.get(link).status_code == 200


def test_the_add_a_server_hint_describes_an_msc_relay_not_an_esp(staff_client: Client) -> None:
    page = staff_client.get(reverse("staff:servers")).content.decode()
    form = page[page.index("<h2>Add a server</h2>") :]
    assert "sendgrid" not in form.lower() and "sparkpost" not in form.lower()
    assert "one relay of the shared MSC pool" in form


def test_staff_have_an_account_page_for_their_password_and_two_factor(
    staff_client: Client, staff_user: User
) -> None:
    from tests.factories import PASSWORD

    console = staff_client.get(reverse("staff:home")).content.decode()
    url = reverse("staff:account")
    assert f'href="{url}"' in console  # in the staff navigation (and the footer)
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert staff_user.email in html
    assert 'id="account-two-factor"' in html and '<span class="badge ok">on</span>' in html
    assert f'href="{reverse("account_change_password")}"' in html
    assert f'href="{reverse("mfa_index")}"' in html
    # The pages it points to work for staff, who belong to no tenant.
    assert staff_client.get(reverse("mfa_index")).status_code == 200
    change = reverse("account_change_password")
    assert staff_client.get(change).status_code == 200
    new = "a-new-staff-password-77"
    response = staff_client.post(
        change, {"oldpassword": PASSWORD, "password1": new, "password2": new}
    )
    assert response.status_code == 302, response.content[:400]
    staff_user.refresh_from_db()
    assert staff_user.check_password(new)
