"""Resolves the request's tenant (the one place that does), enforces MFA for privileged users
and guards the staff console."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape as html_unescape
from urllib.parse import urlencode, urljoin, urlparse

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from accounts.access import recently_authenticated
from accounts.models import Membership, Role, Tenant


def _membership_for(request: HttpRequest) -> Membership | None:
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return None
    try:
        return Membership.objects.select_related("tenant").get(user=user)
    except Membership.DoesNotExist:
        return None


VIEW_AS = "staff_view_as_tenant"


def _viewing_as(request: HttpRequest) -> Membership | None:
    """Staff "view as tenant": an unsaved admin membership of the tenant staff chose, so every
    tenant-scoped query still goes through ``request.tenant``. Read-only (``ReadOnlyViewAs``)."""
    user = request.user
    tenant_id = request.session.get(VIEW_AS)
    if not tenant_id or not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return Membership(tenant=tenant, user=user, role=Role.ADMIN)  # never saved


class TenantMiddleware:
    """Sets ``request.membership`` and ``request.tenant`` (None for staff and anonymous users,
    unless staff are viewing a tenant) and ``request.view_as`` (that tenant, read-only)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        viewing = _viewing_as(request) if VIEW_AS in request.session else None
        request.view_as = viewing.tenant if viewing else None  # type: ignore[attr-defined]
        membership = SimpleLazyObject(lambda: viewing or _membership_for(request))
        request.membership = membership  # type: ignore[attr-defined]
        request.tenant = SimpleLazyObject(  # type: ignore[attr-defined]
            lambda: membership.tenant if membership else None
        )
        return self.get_response(request)


class ReadOnlyViewAsMiddleware:
    """While staff view a tenant, nothing can be changed, and the pages say so.

    Every unsafe request is refused (htmx included) except stopping the view, signing out and
    confirming the staff member's own password; each refusal is written to the staff audit log
    and answered so the page shows it: a plain POST goes back where it came from with a
    message, an htmx one answers 403 with a ``view-as-refused`` trigger the in-place button
    displays. Before that can happen, every page's POST forms are shown disabled, with the
    reason (one mechanism for every template; GET forms such as filters stay usable)."""

    SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
    ALLOWED = (
        "/staff/view-as/stop/",
        "/accounts/logout/",
        "/accounts/reauthenticate/",
        "/accounts/2fa/reauthenticate/",
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "view_as", None)
        if tenant is None:
            return self.get_response(request)
        reason = view_as_reason(tenant)
        if request.method not in self.SAFE_METHODS and request.path not in self.ALLOWED:
            return self._refuse(request, tenant, reason)
        response = self.get_response(request)
        if (
            not response.streaming
            and response.get("Content-Type", "").startswith("text/html")
            and not response.has_header("Content-Disposition")
        ):
            html = response.content.decode(response.charset)
            response.content = lock_forms(html, reason=reason, path=request.path).encode(
                response.charset
            )
            if response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
        return response

    def _refuse(self, request: HttpRequest, tenant: Tenant, reason: str) -> HttpResponse:
        from staff.services import audit

        try:
            view = resolve(request.path).view_name
        except Resolver404:
            view = ""
        htmx = bool(request.htmx)  # type: ignore[attr-defined]
        audit(
            actor=request.user,  # type: ignore[arg-type]
            action="refused while viewing as tenant",
            tenant=tenant,
            subject=f"{request.method} {request.path}",
            details={"url": request.path, "view": view, "htmx": htmx},
        )
        if htmx:
            response = HttpResponse(reason, status=403, content_type="text/plain")
            response["HX-Reswap"] = "none"
            response["HX-Trigger"] = json.dumps({"view-as-refused": {"message": reason}})
            return response
        messages.error(request, reason)
        back = request.headers.get("Referer", "")
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return redirect("home")
        page = urlparse(back)
        return redirect(page.path + (f"?{page.query}" if page.query else ""))


def view_as_reason(tenant: Tenant) -> str:
    return f"You are viewing {tenant.name} read-only: nothing can be changed."


# A start tag's attributes may hold ">" only inside quotes. Forms never nest in HTML.
_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_FORM = re.compile(rf"<form\b(?P<attrs>{_ATTRS})>(?P<body>.*?)</form>", re.S | re.I)
_METHOD_POST = re.compile(r"""\bmethod\s*=\s*["']?post\b""", re.I)
_ACTION = re.compile(r"""\baction\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_INLINE = re.compile(r"""\bclass\s*=\s*["'][^"']*\binline-form\b""", re.I)
_HX_UNSAFE = re.compile(
    rf"<(?P<tag>button|input|select|textarea)\b(?P<attrs>{_ATTRS}\bhx-(?:post|put|patch|delete)\s*="
    rf"{_ATTRS})>",
    re.I,
)


def lock_forms(html: str, *, reason: str, path: str) -> str:
    """Wrap the controls of every POST form (except those posting to ``ALLOWED`` URLs) in a
    disabled fieldset that carries the reason, and disable htmx controls that would write."""
    note = escape(reason)

    def lock(match: re.Match[str]) -> str:
        attrs, body = match.group("attrs"), match.group("body")
        if not _METHOD_POST.search(attrs):
            return match.group(0)
        action = _ACTION.search(attrs)
        url = html_unescape(action.group(1) or action.group(2) or "") if action else ""
        if urlparse(urljoin(path, url)).path in ReadOnlyViewAsMiddleware.ALLOWED:
            return match.group(0)
        visible = "" if _INLINE.search(attrs) else f'<p class="view-as-note">{note}</p>'
        return (
            f"<form{attrs}>"
            f'<fieldset class="view-as-locked" disabled title="{note}" '
            f'aria-describedby="view-as-reason">{visible}{body}</fieldset></form>'
        )

    def disable(match: re.Match[str]) -> str:
        return f'<{match.group("tag")} disabled title="{note}"{match.group("attrs")}>'

    return _HX_UNSAFE.sub(disable, _FORM.sub(lock, html))


def user_requires_mfa(user: object, membership: Membership | None) -> bool:
    if not settings.MSC_REQUIRE_MFA:
        return False
    is_staff = bool(getattr(user, "is_staff", False))
    return is_staff or bool(membership and membership.is_admin)


def user_has_totp(user: object) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class MfaRequiredMiddleware:
    """Tenant admins and staff without TOTP are sent to set it up before anything else."""

    ALLOWED_PREFIXES = ("/accounts/", "/static/", "/health/", "/invite/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(self.ALLOWED_PREFIXES)
            and user_requires_mfa(user, request.membership)  # type: ignore[attr-defined]
            and not user_has_totp(user)
        ):
            target = reverse("mfa_activate_totp")
            if request.htmx:  # type: ignore[attr-defined]
                return HttpResponseClientRedirect(target, status=204)
            return redirect(target)
        return self.get_response(request)


class StaffGateMiddleware:
    """The staff console and the Django admin, in one place: everyone but active staff gets
    404 (the URLs are not advertised, not even to signed-out visitors), and staff must have
    signed in or confirmed their password recently (MFA is enforced above, as for admins)."""

    PREFIXES = ("/staff/", "/django-admin/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.PREFIXES):
            return self.get_response(request)
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            raise Http404
        if not recently_authenticated(request):
            if request.method == "POST":
                messages.warning(request, "Confirm your password first, then do that again.")
            back = request.path if request.method == "GET" else reverse("staff:home")
            target = f"{reverse('account_reauthenticate')}?{urlencode({'next': back})}"
            if request.htmx:  # type: ignore[attr-defined]
                return HttpResponseClientRedirect(target, status=204)
            return redirect(target)
        return self.get_response(request)
