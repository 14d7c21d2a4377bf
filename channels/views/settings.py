"""Delivery channels, the user's own: Email Connection, personal SMTP, legacy MSC servers,
identities, routing."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import TenantRequest, recently_authenticated, tenant_member_required
from accounts.models import User
from channels import kinds, overview_page, services
from channels.access import (
    channel_for_user,
    choosable_channels,
    mailbox_for_user,
    visible_channels,
)
from channels.domaincheck.selectors import warnings_context
from channels.forms import IdentityForm, oauth_client_configured
from channels.kinds import ChannelKind
from channels.kinds.custom_smtp import SmtpChannelForm
from channels.kinds.exchange_onprem import ExchangeOnPremForm
from channels.models import Channel, Identity
from channels.overview_page import Section
from channels.routing import routing_table
from channels.views._helpers import recent_auth_required


def _my_channels(request: TenantRequest) -> dict[str, Channel]:
    return {
        c.kind: c
        for c in visible_channels(request)
        .personal_for(request.user)
        .prefetch_related("inbox_cursors")
    }


@require_GET
@tenant_member_required
def channel_overview(request: TenantRequest) -> HttpResponse:
    return render_overview(request, section=request.GET.get("section", ""))


def overview_sections(request: TenantRequest, *, has_team_channel: bool) -> list[Section]:
    """The page's sections, as tabs: the team's only for its admins, or for a member whose
    team has a channel (read-only: what it is, who set it)."""
    admin = bool(request.membership.is_admin)
    return [
        Section("mine", _("My channel")),
        *([Section("team", _("Team channel"))] if admin or has_team_channel else []),
        Section("identities", _("Identities")),
        Section("limits", _("Limits")),
    ]


def render_overview(
    request: TenantRequest, *, identity_form: IdentityForm | None = None, section: str = ""
) -> HttpResponse:
    """The channels page, one section at a time (``?section=``; an unknown one shows the first).
    With a bound ``identity_form`` that did not validate, the Identities section shows its
    errors beside its fields, keeps what was typed, and the answer is a 400."""
    if identity_form is not None:
        section = "identities"
    # Read only: the default identity is made when the member signs in (channels.apps).
    mine = _my_channels(request)
    team = Channel.objects.for_tenant(request.tenant).team().first()
    sections = overview_sections(request, has_team_channel=team is not None)
    if section not in {s.key for s in sections}:
        section = sections[0].key
    context: dict[str, object] = {
        "section": section,
        "sections": sections,
        "mine": mine,
        "team_channel": team,
        "domain_notice": warnings_context(request),
    }
    if section == "mine":
        # Each kind's card (its ``overview_template``) with the user's channel of that kind.
        legacy = request.tenant.legacy_toutapp
        cards = [(k, mine.get(k.value)) for k in kinds.offered(legacy_toutapp=legacy)]
        context |= {
            "kinds": kinds.catalogue(legacy_toutapp=legacy),
            "connection_cards": [card for card in cards if card[0].email_connection],
            "own_cards": [card for card in cards if not card[0].email_connection],
            "google_ready": oauth_client_configured("google"),
            "microsoft_ready": oauth_client_configured("microsoft"),
            "recently_confirmed": recently_authenticated(request),
        }
    elif section == "identities":
        identities = list(
            Identity.objects.for_tenant(request.tenant)
            .filter(user=request.user)
            .select_related("channel")
        )
        context |= {
            "identities": identities,
            "identity_form": identity_form or IdentityForm(),
            "routes": routing_table(request.user, identities),
            "choosable": list(choosable_channels(request)),
        }
    elif section == "limits":
        context["limit_panels"] = overview_page.limit_panels(request)
    status = 400 if identity_form is not None and identity_form.errors else 200
    return render(request, "channels/overview.html", context, status=status)


def edit_smtp_channel(request: TenantRequest, *, owner: User | None) -> HttpResponse:
    """The custom SMTP form, for the user's own channel or (owner None) the team channel."""
    team = owner is None
    channels = Channel.objects.for_tenant(request.tenant)
    channel = (
        (channels.team() if team else channels.personal_for(request.user))
        .filter(kind=ChannelKind.CUSTOM_SMTP)
        .first()
    )
    initial = (
        {**channel.smtp.to_dict(), "use_for_all_members": channel.use_for_all_members}
        if channel
        else {}
    )
    form = SmtpChannelForm(
        request.POST or None,
        initial=initial,
        has_password=bool(channel and channel.secret),
        team=team,
    )
    if request.method == "POST" and form.is_valid():
        services.channel_save_smtp(
            tenant=request.tenant,
            actor=request.user,
            owner=owner,
            config=form.config(),
            password=form.cleaned_data["password"],
            use_for_all_members=bool(form.cleaned_data.get("use_for_all_members")),
        )
        messages.success(request, _("SMTP settings saved. Use Test connection to check them."))
        return redirect("channels:team" if team else "channels:overview")
    _ask_password_again(request, form)
    context = {"form": form, "channel": channel, "team": team}
    return render(request, "channels/smtp_form.html", context, status=400 if form.errors else 200)


def _ask_password_again(request: TenantRequest, form: forms.Form) -> None:
    """A password typed into a form that comes back with an error is not sent back to the
    browser: say so, rather than "leave blank to keep it", which would keep the old one."""
    if form.errors and request.POST.get("password"):
        again = _("Type the password again: it is not kept when the form comes back with an error.")
        form.fields["password"].help_text = again
        form["password"].help_text = again  # the bound field was made (and copied it) already


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@tenant_member_required
@recent_auth_required
def smtp_edit(request: TenantRequest) -> HttpResponse:
    return edit_smtp_channel(request, owner=request.user)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@tenant_member_required
@recent_auth_required
def exchange_edit(request: TenantRequest) -> HttpResponse:
    channel = _my_channels(request).get(ChannelKind.EXCHANGE_ONPREM)
    initial = channel.exchange.to_dict() if channel else {"autodiscover": True}
    form = ExchangeOnPremForm(
        request.POST or None, initial=initial, has_password=bool(channel and channel.secret)
    )
    if request.method == "POST" and form.is_valid():
        services.channel_save_exchange_onprem(
            tenant=request.tenant,
            actor=request.user,
            owner=request.user,
            config=form.config(),
            password=form.cleaned_data["password"],
        )
        messages.success(
            request, _("Exchange on-premises connection saved. Use Test connection to check it.")
        )
        return redirect("channels:overview")
    _ask_password_again(request, form)
    return render(
        request,
        "channels/exchange_form.html",
        {"form": form, "channel": channel},
        status=400 if form.errors else 200,
    )


@require_POST
@tenant_member_required
def legacy_select(request: TenantRequest) -> HttpResponse:
    # Refused inside the service for modern tenants (403), whatever the request says.
    services.channel_select_legacy(tenant=request.tenant, actor=request.user, owner=request.user)
    messages.success(
        request,
        _(
            "Your web-app mail now goes through the MSC servers (legacy), from every identity. "
            "The Gmail and Office 365 plugins keep their own mailbox."
        ),
    )
    return redirect("channels:overview")


@require_POST
@tenant_member_required
def channel_remove(request: TenantRequest, pk: int) -> HttpResponse:
    channel = channel_for_user(request, pk, write=True)
    label = channel.label
    services.channel_delete(channel=channel, actor=request.user)
    messages.success(request, _("%(channel)s was removed.") % {"channel": label})
    return redirect("channels:team" if channel.is_team else "channels:overview")


@require_POST
@tenant_member_required
def send_as_refresh(request: TenantRequest, pk: int) -> HttpResponse:
    """Ask the provider again which addresses the user's mailbox may send as."""
    channel = channel_for_user(request, pk, write=True)
    if not channel.kind_spec.restricts_senders:
        raise Http404
    refreshed = services.channel_refresh_send_as(channel=channel, actor=request.user)
    if refreshed.problem:
        messages.error(
            request,
            _("%(channel)s: %(problem)s")
            % {"channel": channel.label, "problem": refreshed.problem},
        )
    else:
        may = ", ".join(refreshed.addresses)
        messages.success(
            request, _("%(channel)s may send as %(may)s.") % {"channel": channel.label, "may": may}
        )
    return redirect("channels:overview")


@require_POST
@tenant_member_required
def trial_account(request: TenantRequest, pk: int) -> HttpResponse:
    """Mark a mailbox as a trial account (lower provider limits) or not: its owner, or an
    admin for any member's mailbox."""
    channel = mailbox_for_user(request, pk)
    trial = request.POST.get("trial") == "1"
    channel = services.channel_set_trial(channel=channel, actor=request.user, trial=trial)
    limits = "; ".join(rule.label for rule in channel.kind_spec.limits(channel))
    done = (
        _("%(channel)s is a trial account. %(limits)s.")
        if trial
        else _("%(channel)s is not a trial account. %(limits)s.")
    )
    messages.success(request, done % {"channel": channel.label, "limits": limits})
    return redirect("channels:overview" if channel.owner_id == request.user.pk else "channels:team")
