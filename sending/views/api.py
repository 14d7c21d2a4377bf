"""The plugins' JSON endpoint (bearer token) and the page that issues those tokens."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_member_required, tenant_object_or_404
from sending import services
from sending.forms import ApiMessageForm, ApiTokenForm
from sending.models import ApiToken, MessageStatus

MAX_BODY = 256 * 1024
TOKENS_PAGE = reverse_lazy("sending:api_tokens")


@require_http_methods(["GET", "POST"])
@tenant_member_required
def tokens(request: TenantRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        _, new_token = services.api_token_create(
            tenant=request.tenant, user=request.user, name=form.cleaned_data["name"]
        )
        form = ApiTokenForm()
    rows = ApiToken.objects.for_tenant(request.tenant).filter(user=request.user)
    return render(
        request,
        "sending/api_tokens.html",
        {"form": form, "tokens": rows, "new_token": new_token},
        status=400 if form.errors else 200,
    )


@require_POST
@tenant_member_required
def token_revoke(request: TenantRequest, pk: int) -> HttpResponse:
    token = tenant_object_or_404(request, ApiToken.objects.filter(user=request.user), pk=pk)
    services.api_token_revoke(token=token)
    text = gettext("Revoked “%(name)s”. Anything using it stops working now.")
    messages.success(request, text % {"name": token.name})
    return redirect("sending:api_tokens")


def _error(status: int, text: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": text, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="msc-admin"'
    return response


def _token_from(request: HttpRequest) -> ApiToken | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.startswith(services.TOKEN_PREFIX):
        return None
    row = (
        ApiToken.objects.select_related("user__membership", "tenant")
        .filter(digest=services.token_digest(value.strip()))
        .first()
    )
    if row is None or not row.user.is_active:
        return None
    membership = getattr(row.user, "membership", None)
    if membership is None or membership.tenant_id != row.tenant_id:
        return None
    return row


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


@csrf_exempt  # bearer-token authentication: no cookies, so no cross-site request to forge
def api_messages(request: HttpRequest) -> JsonResponse:
    """Submit one email (the fields are ``ApiMessageForm``'s). Anything but a POST (a browser
    opening the address) is told what to send, not a blank 405 page."""
    if request.method != "POST":
        text = gettext(
            "POST a JSON object here, with your API token in an 'Authorization: Bearer' header; "
            "see the API tokens page: %(url)s"
        )
        response = _error(405, text % {"url": request.build_absolute_uri(str(TOKENS_PAGE))})
        response["Allow"] = "POST"
        return response
    token = _token_from(request)
    if token is None:
        return _error(401, gettext("A valid API token is required: Authorization: Bearer msc_…"))
    if len(request.body) > MAX_BODY:
        text = gettext("The request is larger than %(kb)s KB.") % {"kb": MAX_BODY // 1024}
        return _error(413, text)
    if (payload := _json_object(request.body)) is None:
        return _error(400, gettext("The body must be a JSON object."))
    services.api_token_used(token=token)
    form = ApiMessageForm(payload, user=token.user, tenant=token.tenant)
    if not form.is_valid():
        return _error(400, gettext("Some fields are not valid."), fields=form.first_errors())
    try:
        message = services.message_compose(
            tenant=token.tenant, sender=token.user, draft=form.draft()
        )
    except services.BlockedRecipient as error:
        return _error(400, error.messages[0], fields={"to": gettext("Blocked domain.")})
    except ValidationError as error:
        return _error(400, error.messages[0])
    channel = message.channel.label if message.channel else None
    accepted = {"id": message.pk, "status": message.status, "message_id": message.message_id}
    if message.status == MessageStatus.SUPPRESSED:  # stored, never sent: the reason says why
        accepted["detail"] = message.detail_text  # in the request's language
    return JsonResponse({**accepted, "channel": channel, "source": message.source}, status=202)
