"""Test connection and send-test-email: real handshakes, answered as htmx fragments."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import TenantRequest, tenant_member_required
from channels import services
from channels.access import channel_for_user
from channels.forms import TestEmailForm
from channels.views._helpers import htmx_done

TEMPLATE = "channels/_test_result.html"


@require_POST
@tenant_member_required
def channel_test(request: TenantRequest, pk: int) -> HttpResponse:
    channel = channel_for_user(request, pk, write=True)
    report = services.channel_check_connection(channel=channel, actor=request.user)
    if not request.htmx:
        return redirect("channels:team" if channel.is_team else "channels:overview")
    channel.refresh_from_db()  # the answer also updates the card: badge, notice, last test
    context = {"report": report, "channel": channel}
    return htmx_done(render(request, TEMPLATE, context), "channel-tested")


@require_POST
@tenant_member_required
def channel_test_email(request: TenantRequest, pk: int) -> HttpResponse:
    channel = channel_for_user(request, pk, write=True)
    form = TestEmailForm(request.POST)
    if not form.is_valid():
        return render(request, TEMPLATE, {"form_errors": form.errors["to"]}, status=400)
    report = services.channel_send_test_email(
        channel=channel, actor=request.user, to=form.cleaned_data["to"]
    )
    if not request.htmx:
        return redirect("channels:team" if channel.is_team else "channels:overview")
    return htmx_done(render(request, TEMPLATE, {"report": report}), "channel-tested")
