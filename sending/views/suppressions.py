"""The suppression list: everyone sees why an address is on it; admins search, filter, remove
(after a confirmation, audited), export and import it."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import CharField, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts.access import TenantRequest, tenant_admin_required, tenant_member_required
from msc_admin.stored import read
from sending.forms import SuppressionAddForm, SuppressionImportForm
from sending.models import Suppression, SuppressionReason
from sending.services import suppressions as services

PAGE_SIZE = 50
REMOVE_MAX = 500


def _matching(q: str) -> Q:
    """What a search matches, as the list shows it: the address; the reason in words, in the
    reader's language or English; the detail's words (a stored sentence keeps its English words
    and its values, such as the subject and the server's code, as text); who added it, by
    name ("Ada Admin") or address (the rows need ``_ADDED_BY``)."""
    wanted = q.casefold()
    with translation.override("en"):
        english = {code: str(label).casefold() for code, label in SuppressionReason.choices}
    reasons = [
        code
        for code, label in SuppressionReason.choices
        if wanted in str(label).casefold() or wanted in english[code]
    ]
    return (
        Q(address__icontains=q)
        | Q(detail__icontains=q)
        | Q(reason__in=reasons)
        | Q(added_by_name__icontains=q)
        | Q(created_by__email__icontains=q)
    )


# Who added an entry, as the list names them (``person``): first and last name together.
_ADDED_BY = {
    "added_by_name": Concat(
        "created_by__first_name", Value(" "), "created_by__last_name", output_field=CharField()
    )
}


def _filtered(request: TenantRequest) -> tuple[QuerySet[Suppression], str, str]:
    found = Suppression.objects.for_tenant(request.tenant).select_related("created_by")
    if q := request.GET.get("q", "").strip()[:200]:
        found = found.alias(**_ADDED_BY).filter(_matching(q))
    if (reason := request.GET.get("reason", "")) in SuppressionReason.values:
        found = found.filter(reason=reason)
    else:
        reason = ""
    return found, q, reason


def _page(
    request: TenantRequest,
    *,
    add_form: SuppressionAddForm | None = None,
    import_form: SuppressionImportForm | None = None,
) -> dict[str, object]:
    found, q, reason = _filtered(request)
    total = Suppression.objects.for_tenant(request.tenant).count()
    # Filtered, the count says how many match out of how many: one more count only then. The
    # pager is given the count it needs rather than counting the list once more.
    matching = found.count() if q or reason else total
    paginator = Paginator(found, PAGE_SIZE)
    paginator.count = matching
    return {
        "page": paginator.get_page(request.GET.get("page")),
        "q": q,
        "reason": reason,
        "reasons": SuppressionReason.choices,
        "total": total,
        "matching": matching,
        "add_form": add_form or SuppressionAddForm(),
        "import_form": import_form or SuppressionImportForm(),
    }


@require_GET
@tenant_member_required
def suppression_list(request: TenantRequest) -> HttpResponse:
    return render(request, "sending/suppressions.html", _page(request))


@require_POST
@tenant_member_required
def suppressions_remove(request: TenantRequest) -> HttpResponse:
    """First post: the chosen entries, to confirm. Second (``confirm=yes``): removed."""
    if not request.membership.is_admin:
        raise PermissionDenied("Only an admin can take an address off the suppression list.")
    ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit()][:REMOVE_MAX]
    chosen = Suppression.objects.for_tenant(request.tenant).filter(pk__in=ids)
    if not ids or not chosen.exists():
        messages.info(request, gettext("Choose the addresses to remove first."))
        return redirect("sending:suppressions")
    if request.POST.get("confirm") != "yes":
        return render(request, "sending/suppressions_remove.html", {"chosen": chosen})
    removed = services.suppressions_remove(tenant=request.tenant, by=request.user, ids=ids)
    n = len(removed)
    text = ngettext(
        "Removed %(n)s address from the list: mail to it goes out.",
        "Removed %(n)s addresses from the list: mail to them goes out.",
        n,
    )
    messages.success(request, text % {"n": n})
    return redirect("sending:suppressions")


@require_POST
@tenant_admin_required
def suppression_add(request: TenantRequest) -> HttpResponse:
    """A mistake is shown beside the field with what was typed kept; done, the page reloads
    (htmx) or redirects (a plain POST) with the confirmation."""
    form = SuppressionAddForm(request.POST)
    if form.is_valid():
        try:
            entry = services.suppression_add(
                tenant=request.tenant,
                by=request.user,
                address=form.cleaned_data["address"],
                note=form.cleaned_data["note"],
            )
        except ValidationError as error:
            form.add_error("address", error)
        else:
            text = gettext("%(address)s is suppressed: nothing will be sent to it.")
            messages.success(request, text % {"address": entry.address})
            if request.htmx:
                return HttpResponseClientRefresh()
            return redirect("sending:suppressions")
    if request.htmx:
        # 200, not 400: htmx swaps no 4xx answer, and the form with its errors must replace
        # the one typed in.
        return render(request, "sending/suppressions.html#suppression-add", {"add_form": form})
    context = _page(request, add_form=form)
    return render(request, "sending/suppressions.html", context, status=400)


@require_POST
@tenant_admin_required
def suppressions_import(request: TenantRequest) -> HttpResponse:
    form = SuppressionImportForm(request.POST, request.FILES)
    if not form.is_valid():
        context = _page(request, import_form=form)
        return render(request, "sending/suppressions.html", context, status=400)
    done = services.suppressions_import(
        tenant=request.tenant, by=request.user, text=form.cleaned_data["file"]
    )
    text = ngettext(
        "Imported: %(added)s address added, %(existing)s already on the list.",
        "Imported: %(added)s addresses added, %(existing)s already on the list.",
        done.added,
    )
    messages.success(request, text % {"added": done.added, "existing": done.existing})
    if skipped := done.no_address:
        n, shown = len(skipped), ", ".join(str(line) for line in skipped[:20])
        if n > 20:
            text = gettext(
                "%(n)s rows had no address and were skipped: lines %(shown)s and %(more)s more."
            )
        else:
            text = ngettext(
                "%(n)s row had no address and was skipped: line %(shown)s.",
                "%(n)s rows had no address and were skipped: lines %(shown)s.",
                n,
            )
        messages.warning(request, text % {"n": n, "shown": shown, "more": n - 20})
    for row, error in done.errors[:20]:
        text = gettext("Row %(row)s: %(error)s") % {"row": row, "error": error}
        messages.warning(request, text)
    if len(done.errors) > 20:
        more = len(done.errors) - 20
        text = ngettext(
            "…and %(n)s more row with errors.", "…and %(n)s more rows with errors.", more
        )
        messages.warning(request, text % {"n": more})
    return redirect("sending:suppressions")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    """A cell a spreadsheet would run as a formula is quoted."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


@require_GET
@tenant_admin_required
def suppressions_export(request: TenantRequest) -> StreamingHttpResponse:
    found, _, _ = _filtered(request)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(["email", "reason", "reason_label", "detail", "added_at", "added_by"])
        for entry in found.iterator(chunk_size=2000):
            row = [
                entry.address,
                entry.reason,
                entry.get_reason_display(),
                read(entry.detail),  # words, in the language of reason_label
                timezone.localtime(entry.created_at).isoformat(timespec="seconds"),
                entry.created_by.email if entry.created_by else "",
            ]
            yield writer.writerow([_cell(c) for c in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
    return response
