"""The bounce ledger: what bounced, why, how we matched it, and "not a bounce"."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

import bounceparse
from accounts.access import (
    TenantRequest,
    tenant_admin_required,
    tenant_member_required,
    tenant_object_or_404,
)
from channels import services as channel_services
from channels.access import channel_for_user
from channels.esp import provider_for_host
from channels.models import Channel
from msc_admin import enqueue

from . import inbox, reclassify, services, spikes, tasks, webhooks
from .models import BounceEvent, BounceSpike, EspProvider, InboxCursor

SHOWS = {
    "all": gettext_lazy("All"),
    "matched": gettext_lazy("Matched"),
    "unmatched": gettext_lazy("Not matched"),
    "undone": gettext_lazy("Not a bounce"),
}


@require_GET
@tenant_member_required
def bounce_list(request: TenantRequest) -> HttpResponse:
    events = BounceEvent.objects.for_tenant(request.tenant).select_related("message", "channel")
    if not request.membership.is_admin:
        # A rep sees the bounces of their own mail; unmatched bounces are the admins' to sort.
        events = events.filter(message__sender=request.user)
    show = request.GET.get("show", "all")
    if show == "matched":
        events = events.filter(message__isnull=False, undone_at__isnull=True)
    elif show == "unmatched":
        events = events.filter(message__isnull=True)
    elif show == "undone":
        events = events.filter(undone_at__isnull=False)
    page = Paginator(events.defer("raw"), 50).get_page(request.GET.get("page"))
    paused = (
        BounceSpike.objects.for_tenant(request.tenant)
        .filter(resolved_at__isnull=True)
        .select_related("channel")
        if request.membership.is_admin
        else BounceSpike.objects.none()
    )
    context = {"page": page, "show": show, "shows": SHOWS, "paused": paused}
    return render(request, "bounces/list.html", context)


@require_GET
@tenant_member_required
def bounce_detail(request: TenantRequest, pk: int) -> HttpResponse:
    queryset = BounceEvent.objects.select_related("message", "undone_by")
    if not request.membership.is_admin:
        queryset = queryset.filter(message__sender=request.user)
    event = tenant_object_or_404(request, queryset, pk=pk)
    raw = bytes(event.raw).decode("utf-8", errors="replace")
    return render(request, "bounces/detail.html", {**_verdict(event), "raw": raw})


def _verdict(event: BounceEvent, rechecked: str = "") -> dict[str, object]:
    """What the page's verdict part shows: the event, how it was reached, its last re-check."""
    return {
        "event": event,
        "recheck": event.rechecks.select_related("by").first(),
        "instead": reclassify.KINDS.get(event.kind, reclassify.KINDS[bounceparse.NOT_BOUNCE]),
        "current_version": bounceparse.PARSER_VERSION,
        "rechecked": rechecked,
    }


@require_POST
@tenant_admin_required
def bounce_recheck(request: TenantRequest, pk: int) -> HttpResponse:
    """Read the stored bounce again with the current parser and apply what changed."""
    event = tenant_object_or_404(request, BounceEvent.objects.all(), pk=pk)
    said = reclassify.summary(reclassify.bounce_recheck(event=event, by=request.user))
    if not request.htmx:
        messages.success(request, said)
        return redirect("bounces:detail", pk=event.pk)
    event = BounceEvent.objects.select_related("message", "undone_by").get(pk=event.pk)
    response = render(request, "bounces/detail.html#verdict", _verdict(event, said))
    response["HX-Trigger"] = "bounce-rechecked"
    return response


@require_POST
@tenant_admin_required
def bounce_undo(request: TenantRequest, pk: int) -> HttpResponse:
    event = tenant_object_or_404(request, BounceEvent.objects.all(), pk=pk)
    services.undo(event=event, by=request.user)
    messages.success(
        request,
        gettext("Marked “not a bounce”: %(recipient)s no longer counts as bounced.")
        % {"recipient": event.recipient},
    )
    return redirect("bounces:detail", pk=event.pk)


def _scan_status(request: TenantRequest, pk: int, *, after: float | None) -> HttpResponse:
    channel = channel_for_user(request, pk)
    if not inbox.is_scanned(channel):
        raise Http404
    keys = [folder.key for folder in inbox.folders(channel)]
    cursors = InboxCursor.objects.filter(channel=channel, folder__in=keys, scanned_at__isnull=False)
    last = max((c.scanned_at for c in cursors if c.scanned_at), default=None)
    done_at = last.timestamp() if last else 0.0
    pending = after is not None and done_at < after
    # A scan ends within its deadline; one not done well after it never started (no worker, a
    # lost task, a crash): the card stops polling and says so, rather than polling for ever.
    waited = timezone.now().timestamp() - after if after is not None else 0.0
    stalled = pending and waited > scan_wait_seconds()
    context = {
        "channel": channel,
        "pending": pending and not stalled,
        "stalled": stalled,
        "after": after,
    }
    return render(request, "bounces/_scan_status.html", context)


def mailbox_for_admin(request: TenantRequest, pk: int) -> Channel:
    """A member's mailbox whose inbox is read through a provider's API by default, in the
    admin's tenant; else 404."""
    channel = tenant_object_or_404(request, Channel.objects.select_related("owner"), pk=pk)
    if channel.owner_id is None or not channel.kind_spec.reading_api:
        raise Http404
    return channel


def scan_wait_seconds() -> float:
    """How long a card waits for a scan it asked for: the scan's own deadline, twice over."""
    return 2.0 * settings.MSC_OUTBOUND_DEADLINE


@require_POST
@tenant_member_required
def scan_now(request: TenantRequest, pk: int) -> HttpResponse:
    """Read the mailbox for bounces now. With a worker the page polls until the scan is done;
    in the embedded demo the scan runs within this request."""
    channel = channel_for_user(request, pk, write=True)
    if not inbox.is_scanned(channel):
        raise Http404
    requested = timezone.now().timestamp()
    enqueue.after_commit(tasks.scan_inbox, channel.pk)
    if not request.htmx:
        return redirect("channels:overview")
    return _scan_status(request, pk, after=requested)


@require_GET
@tenant_member_required
def scan_status(request: TenantRequest, pk: int) -> HttpResponse:
    try:
        after = float(request.GET["after"])
    except (KeyError, ValueError):
        after = None
    return _scan_status(request, pk, after=after)


@require_POST
@tenant_admin_required
def reading_path(request: TenantRequest, pk: int) -> HttpResponse:
    """Read a member's mailbox through its provider's API or by IMAP: the tenant admin's
    choice, for their own mailbox or any member's."""
    channel = mailbox_for_admin(request, pk)
    choice = request.POST.get("reading", "")
    try:
        channel = channel_services.channel_set_reading(
            channel=channel, actor=request.user, reading=choice
        )
    except ValidationError:
        messages.error(
            request,
            gettext("Choose how to read the mailbox: through its provider's API or by IMAP."),
        )
        return redirect("channels:overview")
    messages.success(
        request,
        gettext("%(channel)s: %(reading)s.")
        % {"channel": channel.label, "reading": inbox.path_words(channel)},
    )
    return redirect("channels:overview" if channel.owner_id == request.user.pk else "channels:team")


@require_POST
@tenant_member_required
def webhook_issue(request: TenantRequest, pk: int) -> HttpResponse:
    """Set up (or give a new secret to) the ESP webhook of a custom SMTP channel. The URL with
    its secret is shown this once."""
    channel = channel_for_user(request, pk, write=True)
    if not channel.kind_spec.esp_webhooks:
        raise Http404
    provider = request.POST.get("provider", "")
    if provider not in EspProvider.values:
        provider = provider_for_host(channel.smtp.host) or ""
    if not provider:
        context = {"channel": channel, "error": gettext("Choose SendGrid or SparkPost.")}
        return render(request, "bounces/_webhook.html", context, status=400)
    webhook, secret = webhooks.webhook_issue(
        tenant=request.tenant, channel=channel, provider=provider
    )
    url = request.build_absolute_uri(reverse(f"bounces:webhook_{provider}", args=[webhook.key]))
    scheme, _, rest = url.partition("://")
    context = {
        "channel": channel,
        "webhook": webhook,
        "full_url": f"{scheme}://{webhooks.BASIC_USER}:{secret}@{rest}",
    }
    if not request.htmx:
        messages.success(
            request, gettext("Webhook URL (shown once): %(url)s") % {"url": context["full_url"]}
        )
        return redirect("channels:team" if channel.is_team else "channels:overview")
    return render(request, "bounces/_webhook.html", context)


@require_GET
@tenant_admin_required
def spike_list(request: TenantRequest) -> HttpResponse:
    """Channels paused by bounce-spike protection: open ones first, then the history."""
    found = BounceSpike.objects.for_tenant(request.tenant).select_related("channel", "resolved_by")
    page = Paginator(found.order_by("-resolved_at", "-detected_at"), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "bounces/spikes.html", {"page": page})


@require_GET
@tenant_admin_required
def spike_detail(request: TenantRequest, pk: int) -> HttpResponse:
    """One spike: its figures, the wave's reasons and bounces, and the two ways to resume."""
    spike = tenant_object_or_404(request, BounceSpike.objects.select_related("channel"), pk=pk)
    events = spikes.wave(spike) if spike.is_open else BounceEvent.objects.none()
    reasons = events.values("reason", "hard").annotate(n=Count("pk")).order_by("-n", "reason")[:10]
    context = {
        "spike": spike,
        "reasons": list(reasons),
        "count": events.count(),
        "events": events.select_related("message").defer("raw").order_by("-received_at")[:50],
    }
    return render(request, "bounces/spike.html", context)


@require_POST
@tenant_admin_required
def spike_resolve(request: TenantRequest, pk: int) -> HttpResponse:
    spike = tenant_object_or_404(request, BounceSpike.objects.select_related("channel"), pk=pk)
    undo_wave = request.POST.get("undo") == "1"
    try:
        undone = spikes.resolve(spike=spike, by=request.user, undo_wave=undo_wave)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("bounces:spike", pk=spike.pk)
    if undo_wave:
        said = ngettext(
            "%(subject)s resumed. %(n)s bounce was marked “not a bounce”: its message counts as "
            "sent again and the campaigns they ended carry on.",
            "%(subject)s resumed. %(n)s bounces were marked “not a bounce”: their messages count "
            "as sent again and the campaigns they ended carry on.",
            undone,
        )
        messages.success(request, said % {"subject": spike.subject, "n": undone})
    else:
        messages.success(
            request,
            gettext("%(subject)s resumed; the bounces stay recorded.") % {"subject": spike.subject},
        )
    return redirect("bounces:spike", pk=spike.pk)
