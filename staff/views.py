"""The staff console. ``accounts.middleware.StaffGateMiddleware`` guards every URL here (404
for everyone but staff, recent re-authentication); ``staff_required`` repeats the first check."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import staff_required
from accounts.models import Tenant, User
from channels.models import MscServer
from staff import home, selectors, services
from staff.forms import MscServerForm, TenantCreateForm
from staff.models import LegacyMigration, StaffAuditEvent


def _staff(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


@require_GET
@staff_required
def staff_home(request: HttpRequest) -> HttpResponse:
    """Tenants: search, channel mix (users per kind of channel), last-30-day volume."""
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.tenants(search), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "lines": selectors.tenant_lines(page.object_list),
        "q": search,
        "mix_labels": selectors.MIX_ORDER,
        "days": selectors.DAYS,
        "overview": home.overview(),
    }
    return render(request, "staff/home.html", context)


@require_http_methods(["GET", "POST"])
@staff_required
def tenant_create(request: HttpRequest) -> HttpResponse:
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = services.tenant_create(actor=_staff(request), **form.cleaned_data)
        messages.success(
            request,
            _("%(team)s created; %(email)s was invited as its admin.")
            % {"team": tenant.name, "email": form.cleaned_data["admin_email"]},
        )
        return redirect("staff:home")
    status = 400 if request.method == "POST" else 200
    return render(request, "staff/tenant_form.html", {"form": form}, status=status)


@require_GET
@staff_required
def legacy_report(request: HttpRequest) -> HttpResponse:
    context = {"lines": selectors.legacy_report(), "days": selectors.DAYS}
    return render(request, "staff/legacy.html", context)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@staff_required
def servers(request: HttpRequest) -> HttpResponse:
    """The MSC pool, and a form to add a server to it."""
    form = MscServerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        server = services.server_save(
            actor=_staff(request),
            server=None,
            name=form.cleaned_data["name"],
            config=form.config(),
            password=form.cleaned_data["password"],
        )
        messages.success(
            request, _("%(server)s added. Check it before relying on it.") % {"server": server}
        )
        return redirect("staff:servers")
    context = {"servers": MscServer.objects.all(), "form": form}
    return render(request, "staff/servers.html", context, status=400 if form.is_bound else 200)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@staff_required
def server_edit(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(MscServer, pk=pk)
    initial = {
        "name": server.name,
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "auth_method": server.auth_method,
        "username": server.username,
    }
    form = MscServerForm(request.POST or None, initial=initial, has_password=bool(server.secret))
    if request.method == "POST" and form.is_valid():
        services.server_save(
            actor=_staff(request),
            server=server,
            name=form.cleaned_data["name"],
            config=form.config(),
            password=form.cleaned_data["password"],
        )
        messages.success(request, _("%(server)s saved.") % {"server": server})
        return redirect("staff:servers")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "staff/server_form.html", {"form": form, "server": server}, status=status
    )


@require_POST
@staff_required
def server_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(MscServer, pk=pk)
    enabled = request.POST.get("enabled") == "1"
    services.server_set_enabled(actor=_staff(request), server=server, enabled=enabled)
    if enabled:
        done = _("%(server)s enabled: legacy mail may go through it.")
    else:
        done = _("%(server)s disabled: no mail goes to it.")
    messages.success(request, done % {"server": server})
    return redirect("staff:servers")


@require_POST
@staff_required
def server_check(request: HttpRequest, pk: int) -> HttpResponse:
    """A real SMTP handshake; the result is kept on the server's row and shown."""
    server = get_object_or_404(MscServer, pk=pk)
    report = services.server_check(actor=_staff(request), server=server)
    (messages.success if report.ok else messages.error)(request, f"{server}: {report.summary}")
    return redirect("staff:servers")


@require_GET
@staff_required
def audit_log(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    events = StaffAuditEvent.objects.search(search).select_related("tenant")
    tenant = request.GET.get("tenant", "")
    if tenant.isdigit():
        events = events.filter(tenant_id=int(tenant))
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "q": search,
        "tenant": tenant,
        "tenants": Tenant.objects.order_by("name"),
    }
    return render(request, "staff/audit.html", context)


@require_GET
@staff_required
def account(request: HttpRequest) -> HttpResponse:
    """The staff member's own account (staff have no tenant, so not the tenant Settings page):
    password and two-factor authentication, both managed by allauth's pages, and language."""
    from allauth.mfa.models import Authenticator

    kinds = set(Authenticator.objects.filter(user=request.user).values_list("type", flat=True))
    from accounts.forms import LanguageForm

    context = {
        "totp": Authenticator.Type.TOTP in kinds,
        "recovery_codes": Authenticator.Type.RECOVERY_CODES in kinds,
        "language_form": LanguageForm(initial={"language": _staff(request).language}),
    }
    return render(request, "staff/account.html", context)


def _tenant_context(tenant: Tenant) -> dict[str, object]:
    from channels import kinds
    from channels.models import Channel, SendingDomainCheck
    from sending.models import Message, MessageStatus

    msc = Channel.objects.filter(tenant=tenant, kind__in=kinds.values(legacy_only=True))
    return {
        "tenant": tenant,
        "line": selectors.tenant_lines([tenant])[0],
        "msc_channels": msc.count(),
        "msc_users": msc.exclude(owner__isnull=True).values("owner").distinct().count(),
        "msc_queued": Message.objects.filter(
            channel__in=msc, status__in=[MessageStatus.QUEUED, MessageStatus.SCHEDULED]
        ).count(),
        "migration": LegacyMigration.objects.filter(tenant=tenant).first(),
        "status": selectors.migration_status(tenant),
        # The MSC pool's sending domains: staff's to see, never a tenant's.
        "msc_domain_checks": SendingDomainCheck.objects.filter(channel__in=msc),
    }


@require_GET
@staff_required
def tenant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One tenant: its channels, and flagging or moving it off legacy ToutApp (each with a
    confirmation that says what changes), with the migration's progress."""
    tenant = get_object_or_404(selectors.tenants(), pk=pk)
    return render(request, "staff/tenant.html", _tenant_context(tenant))


@require_GET
@staff_required
def tenant_progress(request: HttpRequest, pk: int) -> HttpResponse:
    tenant = get_object_or_404(selectors.tenants(), pk=pk)
    return render(request, "staff/_migration.html", _tenant_context(tenant))


@require_POST
@staff_required
def tenant_legacy(request: HttpRequest, pk: int) -> HttpResponse:
    tenant = get_object_or_404(Tenant, pk=pk)
    if request.POST.get("legacy") == "1":
        services.tenant_flag_legacy(actor=_staff(request), tenant=tenant)
        messages.success(
            request,
            _("%(team)s is a legacy ToutApp tenant: MSC servers are offered.")
            % {"team": tenant.name},
        )
    else:
        try:
            migration = services.tenant_unflag_legacy(actor=_staff(request), tenant=tenant)
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            held = ngettext(
                "%(team)s moved off legacy ToutApp: %(held)d queued or scheduled message waits "
                "for a new channel",
                "%(team)s moved off legacy ToutApp: %(held)d queued or scheduled messages wait "
                "for a new channel",
                migration.held,
            ) % {"team": tenant.name, "held": migration.held}
            told = ngettext(
                "%(n)d person is being told.", "%(n)d people are being told.", migration.users
            ) % {"n": migration.users}
            messages.success(request, f"{held}; {told}")
    return redirect("staff:tenant", pk=tenant.pk)


@require_POST
@staff_required
def view_as(request: HttpRequest, pk: int) -> HttpResponse:
    """See the tenant's pages as its admin would, read-only; audited."""
    from accounts.middleware import VIEW_AS

    tenant = get_object_or_404(Tenant, pk=pk)
    request.session[VIEW_AS] = tenant.pk
    services.audit(actor=_staff(request), action="started viewing as tenant", tenant=tenant)
    return redirect("home")


@require_POST
@staff_required
def view_as_stop(request: HttpRequest) -> HttpResponse:
    from accounts.middleware import VIEW_AS

    tenant_id = request.session.pop(VIEW_AS, None)
    tenant = Tenant.objects.filter(pk=tenant_id).first() if tenant_id else None
    if tenant is not None:
        services.audit(actor=_staff(request), action="stopped viewing as tenant", tenant=tenant)
        return redirect("staff:tenant", pk=tenant.pk)
    return redirect("staff:home")
