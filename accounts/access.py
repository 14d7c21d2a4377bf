"""Access contracts for views: who may reach a page, and tenant-scoped object lookup.

Views never filter by tenant inline; they call ``tenant_object_or_404`` (or a queryset's
``for_tenant``) with ``request.tenant``, which only ``TenantMiddleware`` sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from allauth.account import app_settings as account_settings
from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from accounts.models import Membership, Tenant, User

View = Callable[..., HttpResponseBase]


class TenantRequest(HttpRequest):
    """The request type tenant views receive (attributes set by our middleware)."""

    user: User
    tenant: Tenant
    membership: Membership
    htmx: HtmxDetails


def tenant_member_required(view: View) -> View:
    """Signed in and a member of a tenant. Staff without a tenant are sent to the staff console."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.membership:  # type: ignore[attr-defined]
            if request.user.is_staff:
                return redirect("staff:home")
            raise PermissionDenied(_("Your account is not a member of any team."))
        return view(request, *args, **kwargs)

    return wrapper


def tenant_admin_required(view: View) -> View:
    """A tenant admin of the request's tenant; a rep gets 403."""

    @tenant_member_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.membership.is_admin:  # type: ignore[attr-defined]
            raise PermissionDenied(_("Only tenant admins can open this page."))
        return view(request, *args, **kwargs)

    return wrapper


def staff_required(view: View) -> View:
    """Platform staff only. Everyone else gets 404: staff URLs are not advertised."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not (request.user.is_active and request.user.is_staff):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def tenant_object_or_404[M: Model](request: HttpRequest, queryset: QuerySet[M], **lookup: Any) -> M:
    """Fetch one object of the request's tenant; another tenant's object answers 404."""
    tenant = getattr(request, "tenant", None)
    if not tenant:
        raise Http404
    try:
        return queryset.filter(tenant=tenant).get(**lookup)
    except ObjectDoesNotExist:
        raise Http404 from None


def recently_authenticated(request: HttpRequest) -> bool:
    """Signed in (password and TOTP) or re-authenticated within allauth's re-authentication
    timeout (``MSC_STAFF_REAUTH_SECONDS``). A session without such a record (an old one) must
    confirm the password. The one test for the staff console and for changing credentials."""
    if did_recently_reauthenticate(request):
        return True
    records = get_authentication_records(request, request.user)
    latest = max((record.get("at", 0) for record in records), default=0)
    return time.time() - latest < account_settings.REAUTHENTICATION_TIMEOUT
