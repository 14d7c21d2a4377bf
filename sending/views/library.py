"""Templates and contacts (with CSV import and its progress)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_member_required, tenant_object_or_404
from sending import merge, services
from sending.access import can_change_template, template_for_user
from sending.forms import ContactForm, ContactImportForm, TemplateForm
from sending.models import Contact, ContactImport, Template
from sending.services.suppressions import suppressions_for

SAMPLE_CONTACT = Contact(first_name="Pat", last_name="Example", company="Example Inc.")


@require_GET
@tenant_member_required
def template_list(request: TenantRequest) -> HttpResponse:
    templates = (
        Template.objects.for_tenant(request.tenant).visible_to(request.user).select_related("owner")
    )
    return render(request, "sending/templates.html", {"templates": templates})


@require_http_methods(["GET", "POST"])
@tenant_member_required
def template_edit(request: TenantRequest, pk: int | None = None) -> HttpResponse:
    template = template_for_user(request, pk, write=request.method == "POST") if pk else None
    form = TemplateForm(request.POST or None, instance=template)
    can_change = template is None or can_change_template(request, template)
    if not can_change:  # shown, not offered: saving would be refused
        for field in form.fields.values():
            field.disabled = True
    if request.method == "POST" and form.is_valid():
        saved = services.template_save(
            template=form.save(commit=False), tenant=request.tenant, owner=request.user
        )
        messages.success(request, gettext("Template “%(name)s” saved.") % {"name": saved.name})
        return redirect("sending:template_edit", pk=saved.pk)
    preview = None
    if template is not None:
        preview = merge.render(
            template.subject,
            template.body,
            merge.values_for(
                SAMPLE_CONTACT,
                email="pat@example.com",
                sender_name=request.user.get_full_name() or request.user.email,
                sender_email=request.user.email,
            ),
        )
    status = 400 if form.errors else 200
    return render(
        request,
        "sending/template_form.html",
        {
            "form": form,
            "template": template,
            "can_change": can_change,
            "preview": preview,
            "fields": merge.FIELDS,
        },
        status=status,
    )


@require_POST
@tenant_member_required
def template_delete(request: TenantRequest, pk: int) -> HttpResponse:
    template = template_for_user(request, pk, write=True)
    try:
        services.template_delete(template=template)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("sending:template_edit", pk=pk)
    text = gettext("Template “%(name)s” deleted.") % {"name": template.name}
    messages.success(request, text)
    return redirect("sending:templates")


@require_http_methods(["GET", "POST"])
@tenant_member_required
def contact_list(request: TenantRequest) -> HttpResponse:
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact, created = services.contact_save(
            tenant=request.tenant, owner=request.user, **form.cleaned_data
        )
        text = gettext("Added %(email)s.") if created else gettext("Updated %(email)s.")
        messages.success(request, text % {"email": contact.email})
        return redirect("sending:contacts")
    contacts = Contact.objects.for_tenant(request.tenant)
    if q := request.GET.get("q", "").strip()[:200]:
        contacts = contacts.filter(
            Q(email__icontains=q)
            | Q(first_name__icontains=q)
            | Q(last_name__icontains=q)
            | Q(company__icontains=q)
        )
    page = Paginator(contacts, 50).get_page(request.GET.get("page"))
    marks = suppressions_for(request.tenant.pk, [c.email for c in page.object_list])
    for contact in page.object_list:  # one look-up for the page
        contact.suppression = marks.get(contact.email.lower())  # type: ignore[attr-defined]
    context = {
        "form": form,
        "import_form": ContactImportForm(),
        "page": page,
        "q": q,
        "imports": ContactImport.objects.for_tenant(request.tenant)
        .filter(user=request.user)
        .order_by("-created_at")[:5],
    }
    return render(request, "sending/contacts.html", context, status=400 if form.errors else 200)


@require_POST
@tenant_member_required
def contact_import(request: TenantRequest) -> HttpResponse:
    form = ContactImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = services.import_start(
                tenant=request.tenant, user=request.user, file_name=upload.name, raw=upload.read()
            )
        except ValidationError as error:
            form.add_error("file", error)
        else:
            return redirect("sending:contact_import_status", pk=job.pk)
    context = {
        "form": ContactForm(),
        "import_form": form,
        "page": Paginator(Contact.objects.for_tenant(request.tenant), 50).get_page(1),
        "imports": [],
    }
    return render(request, "sending/contacts.html", context, status=400)


@require_GET
@tenant_member_required
def contact_import_status(request: TenantRequest, pk: int) -> HttpResponse:
    job = tenant_object_or_404(request, ContactImport.objects.filter(user=request.user), pk=pk)
    job = services.import_progress(job)
    template = "sending/import.html"
    if request.htmx:
        template += "#import-progress"
    return render(request, template, {"job": job})
