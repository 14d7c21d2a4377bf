from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import home as overview
from accounts import services
from accounts.access import (
    TenantRequest,
    tenant_admin_required,
    tenant_member_required,
    tenant_object_or_404,
)
from accounts.forms import AcceptInvitationForm, InviteForm, LanguageForm, NameForm, RoleForm
from accounts.models import Membership, User
from accounts.tokens import invitation_token


@require_GET
@tenant_member_required
def home(request: TenantRequest) -> HttpResponse:
    """The overview: each app's tiles for the member's role, and what needs attention."""
    context = {
        "tiles": overview.tiles(request),
        "attention": overview.attention(request),
        "notices": overview.notices(request),
    }
    return render(request, "accounts/home.html", context)


@require_GET
@tenant_member_required
def settings_page(request: TenantRequest) -> HttpResponse:
    form = NameForm(
        initial={"first_name": request.user.first_name, "last_name": request.user.last_name}
    )
    return render(request, "accounts/settings.html", _settings_context(request, name_form=form))


def _settings_context(request: HttpRequest, **forms: object) -> dict[str, object]:
    language_form = LanguageForm(initial={"language": getattr(request.user, "language", "")})
    return {"language_form": language_form, **forms}


@require_POST
@tenant_member_required
def account_name(request: TenantRequest) -> HttpResponse:
    form = NameForm(request.POST)
    if not form.is_valid():
        context = _settings_context(request, name_form=form)
        return render(request, "accounts/settings.html", context, status=400)
    user = services.user_set_name(user=request.user, **form.cleaned_data)
    messages.success(request, _("Your name is now %(name)s.") % {"name": user.get_full_name()})
    return redirect("accounts:settings")


def _browser_language(request: HttpRequest) -> str:
    """The language the browser asks for (Accept-Language), the language cookie aside."""
    cookies = request.COOKIES
    request.COOKIES = {k: v for k, v in cookies.items() if k != settings.LANGUAGE_COOKIE_NAME}
    try:
        return translation.get_language_from_request(request)
    finally:
        request.COOKIES = cookies


def _remember_language(response: HttpResponse, code: str) -> None:
    """The language cookie, as ``set_language`` writes it (deleted for the browser's)."""
    cookie: dict[str, Any] = {
        "path": settings.LANGUAGE_COOKIE_PATH,
        "domain": settings.LANGUAGE_COOKIE_DOMAIN,
        "samesite": settings.LANGUAGE_COOKIE_SAMESITE,
    }
    if not code:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, **cookie)
        return
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        **cookie,
    )


@require_POST
@login_required
def account_language(request: HttpRequest) -> HttpResponse:
    """A person's language (tenant members on Settings, staff on their staff account page). The
    language cookie follows, so the signed-out pages keep it after signing out."""
    user = request.user
    assert isinstance(user, User)
    staff_only = user.is_staff and not getattr(request, "membership", None)
    back = "staff:account" if staff_only else "accounts:settings"
    form = LanguageForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose one of the languages offered."))
        return redirect(back)
    user = services.user_set_language(user=user, language=form.cleaned_data["language"])
    response = redirect(back)
    _remember_language(response, user.language)
    # Said in the language the next page is in.
    with translation.override(user.language or _browser_language(request)):
        if user.language:
            name = dict(settings.LANGUAGES)[user.language]
            messages.success(request, _("Language: %(language)s.") % {"language": name})
        else:
            messages.success(request, _("Pages follow your browser's language."))
    return response


def _members(request: TenantRequest) -> list[Membership]:
    return list(
        Membership.objects.for_tenant(request.tenant)
        .select_related("user", "invited_by")
        .order_by("user__email")
    )


@require_http_methods(["GET", "POST"])
@tenant_admin_required
def users_list(request: TenantRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership = services.membership_invite(
            tenant=request.tenant,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
        )
        messages.success(
            request, _("Invitation sent to %(email)s.") % {"email": membership.user.email}
        )
        return redirect("accounts:users")
    status = 400 if form.errors else 200
    context = {"members": _members(request), "form": form, "roles": RoleForm.base_fields["role"]}
    return render(request, "accounts/users.html", context, status=status)


def _member_response(
    request: TenantRequest, membership: Membership, message: str, error: bool = False
) -> HttpResponse:
    """htmx: the updated row plus an HX-Trigger toast; otherwise POST/redirect/GET."""
    if request.htmx:
        membership.refresh_from_db()
        response = render(
            request,
            "accounts/users.html#member-row",
            {"member": membership, "row_error": message if error else ""},
        )
        response["HX-Trigger"] = "members-changed"
        return response
    (messages.error if error else messages.success)(request, message)
    return redirect("accounts:users")


@require_POST
@tenant_admin_required
def membership_role(request: TenantRequest, pk: int) -> HttpResponse:
    membership = tenant_object_or_404(request, Membership.objects.select_related("user"), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _member_response(request, membership, _("Choose a valid role."), error=True)
    try:
        services.membership_change_role(membership=membership, role=form.cleaned_data["role"])
    except ValidationError as error:
        return _member_response(request, membership, error.messages[0], error=True)
    message = _("%(email)s is now %(role)s.") % {
        "email": membership.user.email,
        "role": membership.get_role_display(),
    }
    return _member_response(request, membership, message)


@require_POST
@tenant_admin_required
def membership_active(request: TenantRequest, pk: int) -> HttpResponse:
    membership = tenant_object_or_404(request, Membership.objects.select_related("user"), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        services.membership_set_active(membership=membership, active=active)
    except ValidationError as error:
        return _member_response(request, membership, error.messages[0], error=True)
    done = _("%(email)s was reactivated.") if active else _("%(email)s was deactivated.")
    return _member_response(request, membership, done % {"email": membership.user.email})


@require_POST
@tenant_admin_required
def membership_resend(request: TenantRequest, pk: int) -> HttpResponse:
    membership = tenant_object_or_404(request, Membership.objects.select_related("user"), pk=pk)
    try:
        services.membership_resend_invitation(membership=membership)
    except ValidationError as error:
        return _member_response(request, membership, error.messages[0], error=True)
    message = _("Invitation sent again to %(email)s.") % {"email": membership.user.email}
    return _member_response(request, membership, message)


def _invited_user(uidb64: str, token: str) -> User | None:
    try:
        pk = force_str(urlsafe_base64_decode(uidb64))
        user = User.objects.get(pk=pk, is_active=True, membership__joined_at__isnull=True)
    except (ValueError, OverflowError, User.DoesNotExist):
        return None
    return user if invitation_token.check_token(user, token) else None


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    user = _invited_user(uidb64, token)
    if user is None:
        return render(request, "accounts/invite_invalid.html", status=404)
    form = AcceptInvitationForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        membership = services.membership_accept_invitation(
            user=user,
            password=form.cleaned_data["password1"],
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
        )
        login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
        messages.success(request, _("Welcome to %(team)s.") % {"team": membership.tenant.name})
        return redirect("home")
    context = {"form": form, "invited_user": user, "tenant": user.membership.tenant}
    return render(
        request, "accounts/invite_accept.html", context, status=400 if form.errors else 200
    )
