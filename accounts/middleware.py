"""Resolves the request's tenant (the one place that does) and enforces MFA for privileged users."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from accounts.models import Membership


def _membership_for(request: HttpRequest) -> Membership | None:
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return None
    try:
        return Membership.objects.select_related("tenant").get(user=user)
    except Membership.DoesNotExist:
        return None


class TenantMiddleware:
    """Sets ``request.membership`` and ``request.tenant`` (None for staff and anonymous users).

    Staff "view as tenant" (the staff console) will hook in here, so that every tenant-scoped
    query keeps going through ``request.tenant``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = SimpleLazyObject(lambda: _membership_for(request))
        request.membership = membership  # type: ignore[attr-defined]
        request.tenant = SimpleLazyObject(  # type: ignore[attr-defined]
            lambda: membership.tenant if membership else None
        )
        return self.get_response(request)


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
                response = HttpResponse(status=204)
                response["HX-Redirect"] = target
                return response
            return redirect(target)
        return self.get_response(request)
