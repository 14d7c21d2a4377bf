"""Check DNS now: the sending domains' SPF, DKIM, DMARC and MX, looked up on demand."""

from __future__ import annotations

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.access import TenantRequest, tenant_member_required
from channels.access import domain_checked_channel
from channels.domaincheck.services import sending_domains_check
from channels.forms import DomainCheckForm
from channels.views._helpers import htmx_done

TEMPLATE = "channels/_domain_checks.html#domain-checks"
# One look-up of a channel's domain per this many seconds on demand: DNS answers are cached
# for minutes anyway, and each check asks a dozen questions of someone else's name servers.
COOLDOWN = 30


@require_POST
@tenant_member_required
def domain_check(request: TenantRequest, pk: int) -> HttpResponse:
    channel = domain_checked_channel(request, pk)
    form = DomainCheckForm(request.POST)
    note = ""
    if not form.is_valid():
        note = " ".join(str(e) for errors in form.errors.values() for e in errors)
        if not request.htmx:
            messages.error(request, note)
            return redirect("channels:team" if channel.is_team else "channels:overview")
        # 200, not 400: htmx swaps no 4xx answer, and the card must show why nothing happened.
        return render(request, TEMPLATE, {"channel": channel, "note": note})
    domain, selector = form.cleaned_data["domain"], form.cleaned_data["selector"]
    checked = 0
    if cache.add(f"domain-check:{channel.pk}:{domain}", True, timeout=COOLDOWN):
        rows = sending_domains_check(
            channel=channel, domain=domain, selector=selector if domain else None
        )
        checked = 1 if domain else len(rows)
    else:
        note = _("Checked moments ago. Try again in half a minute.")
    if not request.htmx:  # back on the card, told what happened
        if note:
            messages.warning(request, note)
        else:
            messages.success(
                request,
                ngettext(
                    "Checked the DNS of %(n)s sending domain: the result is on the card.",
                    "Checked the DNS of %(n)s sending domains: the results are on the card.",
                    checked,
                )
                % {"n": checked},
            )
        page = reverse("channels:team" if channel.is_team else "channels:overview")
        return redirect(f"{page}#domain-checks-{channel.pk}")
    return htmx_done(
        render(request, TEMPLATE, {"channel": channel, "note": note}), "domains-checked"
    )
