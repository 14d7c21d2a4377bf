"""Test connection and send-test-email: real handshakes, answered as htmx fragments."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import TenantRequest, tenant_member_required
from channels import services
from channels.access import channel_for_user
from channels.forms import TestEmailForm
from channels.models import Channel
from channels.views._helpers import htmx_done

TEMPLATE = "channels/_test_result.html"


@require_POST
@tenant_member_required
def channel_test(request: TenantRequest, pk: int) -> HttpResponse:
    channel = channel_for_user(request, pk, write=True)
    report = services.channel_check_connection(channel=channel, actor=request.user)
    if not request.htmx:
        return _back_with(request, channel, report.ok, report.summary)
    channel.refresh_from_db()  # the answer also updates the card: badge, notice, last test
    context = {"report": report, "channel": channel}
    return htmx_done(render(request, TEMPLATE, context), "channel-tested")


@require_POST
@tenant_member_required
def channel_test_email(request: TenantRequest, pk: int) -> HttpResponse:
    channel = channel_for_user(request, pk, write=True)
    form = TestEmailForm(request.POST)
    if not form.is_valid():
        if not request.htmx:
            return _back_with(request, channel, False, " ".join(map(str, form.errors["to"])))
        return render(request, TEMPLATE, {"form_errors": form.errors["to"]}, status=400)
    report = services.channel_send_test_email(
        channel=channel, actor=request.user, to=form.cleaned_data["to"]
    )
    if not request.htmx:
        return _back_with(request, channel, report.ok, report.summary)
    channel.refresh_from_db()  # it is the channel's last test: the card shows it in place
    context = {"report": report, "channel": channel}
    return htmx_done(render(request, TEMPLATE, context), "channel-tested")


def _back_with(request: TenantRequest, channel: Channel, ok: bool, text: str) -> HttpResponse:
    """Without JavaScript (no htmx): back to the channel's card, with the result as a message."""
    (messages.success if ok else messages.error)(request, text)
    return redirect("channels:team" if channel.is_team else "channels:overview")
