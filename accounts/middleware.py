"""Resolves the request's tenant (the one place that does), activates a signed-in person's own
language, enforces MFA for privileged users and guards the staff console."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext
from django_htmx.http import HttpResponseClientRedirect

from accounts.access import recently_authenticated
from accounts.language import supported
from accounts.models import Membership, Role, Tenant


def _membership_for(request: HttpRequest) -> Membership | None:
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return None
    try:
        found = Membership.objects.select_related("tenant").get(user=user)
    except Membership.DoesNotExist:
        return None
    # ``request.user.membership`` (read by selectors and services) is this row: no second query.
    user.membership = found
    return found


VIEW_AS = "staff_view_as_tenant"


def _viewing_as(request: HttpRequest) -> Membership | None:
    """Staff "view as tenant": an unsaved admin membership of the tenant staff chose, so every
    tenant-scoped query still goes through ``request.tenant``. Read-only (``staff.middleware``)."""
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


class UserLanguageMiddleware:
    """A signed-in person's own language (their account page's choice) wins over the browser's,
    which ``LocaleMiddleware`` (before authentication) has activated; "Browser's language" and
    signed-out visitors keep that. The page then depends on the session or the language cookie,
    so responses vary on Cookie (as well as on Accept-Language, which ``LocaleMiddleware`` adds);
    ``LocaleMiddleware`` writes the language used into Content-Language on the way out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        own = supported(getattr(user, "language", "")) if user.is_authenticated else ""
        if not own:
            response = self.get_response(request)
        else:
            browsers = translation.get_language()
            translation.activate(own)
            request.LANGUAGE_CODE = own
            try:
                response = self.get_response(request)
                response.headers.setdefault("Content-Language", own)
            finally:
                # The thread goes on in the browser's language, as LocaleMiddleware leaves it.
                translation.activate(browsers)
        patch_vary_headers(response, ("Cookie",))
        return response


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
                messages.warning(
                    request, gettext("Confirm your password first, then do that again.")
                )
            back = request.path if request.method == "GET" else reverse("staff:home")
            target = f"{reverse('account_reauthenticate')}?{urlencode({'next': back})}"
            if request.htmx:  # type: ignore[attr-defined]
                return HttpResponseClientRedirect(target, status=204)
            return redirect(target)
        return self.get_response(request)
