"""The plugins' JSON endpoint (bearer token) and the page that issues those tokens."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_member_required, tenant_object_or_404
from channels.models import Identity
from channels.routing import Source
from sending import services
from sending.forms import ApiTokenForm
from sending.models import ApiToken, Contact, Template

MAX_BODY = 256 * 1024
API_SOURCES = {Source.GMAIL_PLUGIN, Source.O365_PLUGIN, Source.API}


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
    token.delete()
    messages.success(request, f"Revoked “{token.name}”. Anything using it stops working now.")
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


@csrf_exempt  # bearer-token authentication: no cookies, so no cross-site request to forge
@require_POST
def api_messages(request: HttpRequest) -> JsonResponse:
    """Submit one email. JSON: to, subject, body (or template_id), optional source
    (gmail_plugin, o365_plugin, api), from (an identity address), send_at (ISO 8601)."""
    token = _token_from(request)
    if token is None:
        return _error(401, "A valid API token is required: Authorization: Bearer msc_…")
    if len(request.body) > MAX_BODY:
        return _error(413, f"The request is larger than {MAX_BODY // 1024} KB.")
    try:
        payload = json.loads(request.body)
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        return _error(400, "The body must be a JSON object.")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    user, tenant = token.user, token.tenant
    fields: dict[str, str] = {}
    source = str(payload.get("source") or Source.API)
    if source not in API_SOURCES:
        fields["source"] = f"One of: {', '.join(sorted(API_SOURCES))}."
    identity = None
    if source == Source.API:  # the plugins always send as their mailbox (routing rules)
        wanted = Identity.objects.filter(user=user)
        wanted = (
            wanted.filter(email=str(payload["from"]).lower())
            if payload.get("from")
            else wanted.filter(is_default=True)
        )
        identity = wanted.first()
        if identity is None:
            fields["from"] = "Not one of your sending identities."
    template = None
    if payload.get("template_id") is not None:
        template = (
            Template.objects.for_tenant(tenant)
            .visible_to(user)
            .filter(pk=payload["template_id"] if str(payload["template_id"]).isdigit() else -1)
            .first()
        )
        if template is None:
            fields["template_id"] = "No such template."
    subject = str(payload.get("subject") or (template.subject if template else ""))
    body = str(payload.get("body") or (template.body if template else ""))
    to = str(payload.get("to") or "").strip().lower()
    for name, value in (("to", to), ("subject", subject), ("body", body)):
        if not value:
            fields.setdefault(name, "Required.")
    send_at = None
    if payload.get("send_at"):
        send_at = parse_datetime(str(payload["send_at"]))
        if send_at is None or timezone.is_naive(send_at):
            fields["send_at"] = "An ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z."
    if fields:
        return _error(400, "Some fields are not valid.", fields=fields)
    if blocked := services.blocked_domain(tenant.pk, to):
        text = f"{blocked} is on your team's list of blocked domains."
        return _error(400, text, fields={"to": "Blocked domain."})
    contact = Contact.objects.for_tenant(tenant).filter(email=to).first()
    try:
        services.template_check(subject, body)
        rendered = services.render_for(
            subject=subject, body=body, contact=contact, to_email=to, identity=identity, sender=user
        )
        message = services.message_create(
            tenant=tenant,
            sender=user,
            draft=services.Draft(
                to_email=to,
                subject=rendered.subject,
                body=rendered.body,
                identity=identity,
                source=source,
                template=template,
                contact=contact,
                send_at=send_at,
            ),
        )
    except ValidationError as error:
        return _error(400, error.messages[0])
    return JsonResponse(
        {
            "id": message.pk,
            "status": message.status,
            "message_id": message.message_id,
            "channel": message.channel.label if message.channel else None,
            "source": message.source,
        },
        status=202,
    )
