"""The Outbox (command center): folders, filters, retry and delete, compose."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts.access import TenantRequest, tenant_member_required
from channels.models import Channel, TeamSendingSettings
from channels.routing import Source
from sending import selectors, services
from sending.access import message_for_user, team_scope
from sending.forms import ComposeForm
from sending.models import Message, MessageStatus
from sending.services import Draft

PAGE_SIZE = 50


@require_GET
@tenant_member_required
def outbox(request: TenantRequest, folder: str = "queued") -> HttpResponse:
    if folder not in selectors.FOLDERS:
        raise Http404
    team = team_scope(request)
    mine = Message.objects.for_tenant(request.tenant).visible_to(request.user, team=team)
    filtered = mine
    if q := request.GET.get("q", "").strip()[:200]:
        filtered = filtered.filter(to_email__icontains=q)
    if (channel := request.GET.get("channel", "")).isdigit():
        filtered = filtered.filter(channel_id=int(channel))
    if (source := request.GET.get("source", "")) in Source.values:
        filtered = filtered.filter(source=source)
    label, statuses = selectors.FOLDERS[folder]
    rows = (
        filtered.filter(status__in=statuses)
        .select_related("channel", "sender", "enrollment__campaign", "campaign_step")
        # Queued: next due first. Other folders: newest first, on the outbox indexes' order.
        .order_by("next_attempt_at" if folder == "queued" else "-created_at", "-pk")
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    sending = TeamSendingSettings.objects.filter(tenant=request.tenant).first()
    selectors.expected_send_times(page.object_list, sending)
    held = selectors.held_for_channel(request.user)
    selectors.label_rows(page.object_list, held)
    context = {
        "folder": folder,
        "folder_label": label,
        "empty_text": selectors.EMPTY_FOLDER[folder][bool(q or channel or source)],
        "folders": selectors.FOLDERS,
        "counts": selectors.folder_counts(filtered),
        "page": page,
        "team": team,
        "q": q,
        "channel_filter": channel,
        "source_filter": source,
        "channels": Channel.objects.for_tenant(request.tenant).filter(
            pk__in=mine.values("channel_id")
        ),
        "sources": Source.choices,
        "live": folder in ("queued", "scheduled") or bool(page.object_list),
        "usage": selectors.connection_usage(request.user, team=sending),
        "now": timezone.now(),
        "held": held,
    }
    template = "sending/outbox.html"
    if request.htmx and request.htmx.target == "outbox-live":
        template += "#outbox-live"
    return render(request, template, context)


def _after_action(request: TenantRequest, text: str) -> HttpResponse:
    response: HttpResponse
    if request.htmx:
        response = HttpResponseClientRefresh()
    else:
        response = redirect(request.POST.get("next") or reverse("sending:outbox"))
    messages.success(request, text)
    return response


@require_POST
@tenant_member_required
def message_retry(request: TenantRequest, pk: int) -> HttpResponse:
    message = message_for_user(request, pk)
    if message.uncertain and request.POST.get("confirm") != "yes":
        messages.error(
            request,
            gettext(
                "This message may already have been delivered. Tick “send it again anyway” to "
                "retry."
            ),
        )
        return redirect(reverse("sending:outbox_folder", args=["failed"]))
    try:
        services.message_retry(message=message)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect(reverse("sending:outbox_folder", args=["failed"]))
    return _after_action(
        request, gettext("Retrying the email to %(to)s.") % {"to": message.to_email}
    )


@require_POST
@tenant_member_required
def message_delete(request: TenantRequest, pk: int) -> HttpResponse:
    message = message_for_user(request, pk)
    try:
        services.message_delete(message=message)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect(request.POST.get("next") or reverse("sending:outbox"))
    return _after_action(
        request, gettext("Deleted the email to %(to)s.") % {"to": message.to_email}
    )


@require_http_methods(["GET", "POST"])
@tenant_member_required
def compose(request: TenantRequest) -> HttpResponse:
    """One email. Choosing a template fills Subject and Body at once: htmx GETs them as it is
    chosen (``?template=``); without JavaScript, "Use this template" posts the form back."""
    template = "sending/compose.html"
    if request.method == "GET" or request.POST.get("action") == "template":
        typed = request.POST if request.method == "POST" else request.GET
        form = ComposeForm.prefilled(typed, user=request.user)
        if request.htmx and request.htmx.target == "compose-text":
            template += "#compose-text"
        return render(request, template, {"form": form})
    form = ComposeForm(request.POST, user=request.user)
    preview = None
    if form.is_valid():
        draft = form.draft()
        if request.POST.get("action") == "preview":
            preview = services.message_preview(
                tenant=request.tenant, sender=request.user, draft=draft
            )
        elif sent := _compose_send(request, form, draft):
            return sent
    if request.htmx and preview is not None:
        template += "#preview"
    status = 400 if form.errors else 200
    return render(request, template, {"form": form, "preview": preview}, status=status)


def _compose_send(request: TenantRequest, form: ComposeForm, draft: Draft) -> HttpResponse | None:
    """Queue (or schedule) the composed email and redirect; None with the form's errors set."""
    try:
        message = services.message_compose(tenant=request.tenant, sender=request.user, draft=draft)
    except services.BlockedRecipient as error:
        form.add_error("to", error)
        return None
    except ValidationError as error:
        form.add_error(None, error)
        return None
    # Land where the email is by now: a worker may have sent it already (the demo's in-process
    # tasks always have), or it may have failed.
    message.refresh_from_db()
    folder = selectors.folder_of(message)
    to = message.to_email
    if message.status == MessageStatus.SUPPRESSED:
        messages.warning(request, message.detail_text)
    elif message.status == MessageStatus.SCHEDULED and message.scheduled_at:
        when = date_format(timezone.localtime(message.scheduled_at), "DATETIME_FORMAT")
        text = gettext("Scheduled the email to %(to)s for %(when)s.") % {"to": to, "when": when}
        messages.success(request, text)
    elif message.status == MessageStatus.SENT:
        messages.success(request, gettext("Sent the email to %(to)s.") % {"to": to})
    elif message.status == MessageStatus.FAILED:
        text = gettext("The email to %(to)s could not be sent: see why below.") % {"to": to}
        messages.error(request, text)
    elif folder == "queued":
        messages.success(request, gettext("Queued the email to %(to)s.") % {"to": to})
    else:
        text = gettext("The email to %(to)s is in %(folder)s.")
        messages.success(request, text % {"to": to, "folder": selectors.FOLDERS[folder][0]})
    url = reverse("sending:outbox_folder", args=[folder])
    return redirect(f"{url}#message-{message.pk}")


@require_POST
@tenant_member_required
def reroute_held(request: TenantRequest) -> HttpResponse:
    """Send the mail that waits for a channel (its own was retired) through the current one."""
    done = services.messages_reroute_held(tenant=request.tenant, user=request.user)
    if done.now:
        text = ngettext(
            "%(n)s waiting message will go out now.",
            "%(n)s waiting messages will go out now.",
            done.now,
        )
        messages.success(request, text % {"n": done.now})
    if done.scheduled and done.first_scheduled:
        first = date_format(timezone.localtime(done.first_scheduled), "DATETIME_FORMAT")
        text = ngettext(
            "%(n)s scheduled message will go out at its scheduled time, %(first)s.",
            "%(n)s scheduled messages will go out at their scheduled times (the first %(first)s).",
            done.scheduled,
        )
        messages.success(request, text % {"n": done.scheduled, "first": first})
    if done.reason:  # what the user must do for the rest
        text = gettext("%(reason)s Then send your waiting mail from here.")
        messages.warning(request, text % {"reason": done.reason})
    elif not done.now and not done.scheduled:
        messages.info(request, gettext("No mail of yours is waiting for a channel."))
    return redirect(reverse("sending:outbox"))
