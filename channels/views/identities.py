from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_member_required
from channels import services
from channels.access import choosable_channels, identity_for_user
from channels.forms import IdentityForm, IdentityNameForm
from channels.models import Identity
from channels.routing import ways_to_connect
from channels.views.settings import render_overview


def _identities_section() -> str:
    """Where a change to an identity lands: the section it was made in."""
    return f"{reverse('channels:overview')}?section=identities"


@require_POST
@tenant_member_required
def identity_add(request: TenantRequest) -> HttpResponse:
    existing = set(Identity.objects.filter(user=request.user).values_list("email", flat=True))
    form = IdentityForm(request.POST, existing=existing)
    if not form.is_valid():
        return render_overview(request, identity_form=form)
    identity = services.identity_add(
        tenant=request.tenant,
        user=request.user,
        email=form.cleaned_data["email"],
        name=form.cleaned_data["name"],
        base_url=settings.MSC_BASE_URL,
    )
    messages.success(
        request,
        _("We sent a confirmation link to %(email)s. It can send once confirmed.")
        % {"email": identity.email},
    )
    if identity.channel_id is None and request.user.channels.exists():
        messages.info(
            request,
            _(
                "None of your channels may send as %(email)s yet, so it has none: choose one "
                "for it under Identities once one may (a mailbox sends only as its own "
                "addresses)."
            )
            % {"email": identity.email},
        )
    return redirect(_identities_section())


@require_POST
@tenant_member_required
def identity_resend(request: TenantRequest, pk: int) -> HttpResponse:
    identity = identity_for_user(request, pk)
    if identity.is_verified:
        messages.info(request, _("%(email)s is already verified.") % {"email": identity.email})
    else:
        services.identity_send_verification(identity=identity, base_url=settings.MSC_BASE_URL)
        messages.success(
            request, _("A new confirmation link was sent to %(email)s.") % {"email": identity.email}
        )
    return redirect(_identities_section())


@require_POST
@tenant_member_required
def identity_name(request: TenantRequest, pk: int) -> HttpResponse:
    identity = identity_for_user(request, pk)
    form = IdentityNameForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("name", []):
            messages.error(request, f"{identity.email}: {error}")
        return redirect(_identities_section())
    services.identity_rename(identity=identity, name=form.cleaned_data["name"], actor=request.user)
    messages.success(
        request,
        _("Mail from %(email)s is now signed %(name)s.")
        % {"email": identity.email, "name": identity.name},
    )
    return redirect(_identities_section())


@require_POST
@tenant_member_required
def identity_channel(request: TenantRequest, pk: int) -> HttpResponse:
    identity = identity_for_user(request, pk)
    raw = request.POST.get("channel", "")
    channel = None
    if raw:
        channel = choosable_channels(request).filter(pk=raw if raw.isdigit() else 0).first()
        if channel is None:
            messages.error(
                request,
                _(
                    "That channel cannot send for %(email)s. Choose one of the list, or "
                    "%(what_to_do)s first."
                )
                % {
                    "email": identity.email,
                    "what_to_do": ways_to_connect(admin=request.membership.is_admin),
                },
            )
            return redirect(_identities_section())
    try:
        services.identity_set_channel(identity=identity, channel=channel, actor=request.user)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
        return redirect(_identities_section())
    if channel:
        done = _("%(email)s now sends through %(channel)s.")
    else:
        done = _("%(email)s now sends through the default route.")
    messages.success(request, done % {"email": identity.email, "channel": channel})
    return redirect(_identities_section())


@require_http_methods(["GET", "POST"])
def identity_verify(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm button (mail scanners follow links); POST verifies."""
    result = services.identity_from_token(token)
    if result.identity is None:
        return render(
            request, "channels/identity_verify.html", {"problem": result.problem}, status=404
        )
    if request.method == "POST":
        services.identity_verify(identity=result.identity)
        return render(
            request, "channels/identity_verify.html", {"identity": result.identity, "done": True}
        )
    return render(request, "channels/identity_verify.html", {"identity": result.identity})
