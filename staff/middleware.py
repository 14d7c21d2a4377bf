"""Staff "view as tenant" is read-only: ``accounts.middleware.TenantMiddleware`` puts the tenant
behind ``request.tenant`` and ``request.view_as``; this refuses and audits every change."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape as html_unescape
from urllib.parse import urljoin, urlparse

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from accounts.models import Tenant
from staff.services import audit


class ReadOnlyViewAsMiddleware:
    """While staff view a tenant, nothing can be changed, and the pages say so.

    Every unsafe request is refused (htmx included) except stopping the view, signing out and
    confirming the staff member's own password; each refusal is written to the staff audit log
    and answered so the page shows it: a plain POST goes back where it came from with a
    message, an htmx one answers 403 with a ``view-as-refused`` trigger the in-place button
    displays. Before that can happen, every page's POST forms are shown disabled, with the
    reason (one mechanism for every template; GET forms such as filters stay usable)."""

    SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
    ALLOWED = (
        "/staff/view-as/stop/",
        "/accounts/logout/",
        "/accounts/reauthenticate/",
        "/accounts/2fa/reauthenticate/",
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "view_as", None)
        if tenant is None:
            return self.get_response(request)
        reason = view_as_reason(tenant)
        if request.method not in self.SAFE_METHODS and request.path not in self.ALLOWED:
            return self._refuse(request, tenant, reason)
        response = self.get_response(request)
        if (
            not response.streaming
            and response.get("Content-Type", "").startswith("text/html")
            and not response.has_header("Content-Disposition")
        ):
            html = response.content.decode(response.charset)
            response.content = lock_forms(html, reason=reason, path=request.path).encode(
                response.charset
            )
            if response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
        return response

    def _refuse(self, request: HttpRequest, tenant: Tenant, reason: str) -> HttpResponse:
        try:
            view = resolve(request.path).view_name
        except Resolver404:
            view = ""
        htmx = bool(request.htmx)  # type: ignore[attr-defined]
        audit(
            actor=request.user,  # type: ignore[arg-type]
            action="refused while viewing as tenant",
            tenant=tenant,
            subject=f"{request.method} {request.path}",
            details={"url": request.path, "view": view, "htmx": htmx},
        )
        if htmx:
            response = HttpResponse(reason, status=403, content_type="text/plain")
            response["HX-Reswap"] = "none"
            response["HX-Trigger"] = json.dumps({"view-as-refused": {"message": reason}})
            return response
        messages.error(request, reason)
        back = request.headers.get("Referer", "")
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return redirect("home")
        page = urlparse(back)
        return redirect(page.path + (f"?{page.query}" if page.query else ""))


def view_as_reason(tenant: Tenant) -> str:
    return _("You are viewing %(team)s read-only: nothing can be changed.") % {"team": tenant.name}


# A start tag's attributes may hold ">" only inside quotes. Forms never nest in HTML.
_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_FORM = re.compile(rf"<form\b(?P<attrs>{_ATTRS})>(?P<body>.*?)</form>", re.S | re.I)
_METHOD_POST = re.compile(r"""\bmethod\s*=\s*["']?post\b""", re.I)
_ACTION = re.compile(r"""\baction\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_INLINE = re.compile(r"""\bclass\s*=\s*["'][^"']*\binline-form\b""", re.I)
_HX_UNSAFE = re.compile(
    rf"<(?P<tag>button|input|select|textarea)\b(?P<attrs>{_ATTRS}\bhx-(?:post|put|patch|delete)\s*="
    rf"{_ATTRS})>",
    re.I,
)


def lock_forms(html: str, *, reason: str, path: str) -> str:
    """Wrap the controls of every POST form (except those posting to ``ALLOWED`` URLs) in a
    disabled fieldset that carries the reason, and disable htmx controls that would write."""
    note = escape(reason)

    def lock(match: re.Match[str]) -> str:
        attrs, body = match.group("attrs"), match.group("body")
        if not _METHOD_POST.search(attrs):
            return match.group(0)
        action = _ACTION.search(attrs)
        url = html_unescape(action.group(1) or action.group(2) or "") if action else ""
        if urlparse(urljoin(path, url)).path in ReadOnlyViewAsMiddleware.ALLOWED:
            return match.group(0)
        visible = "" if _INLINE.search(attrs) else f'<p class="view-as-note">{note}</p>'
        return (
            f"<form{attrs}>"
            f'<fieldset class="view-as-locked" disabled title="{note}" '
            f'aria-describedby="view-as-reason">{visible}{body}</fieldset></form>'
        )

    def disable(match: re.Match[str]) -> str:
        return f'<{match.group("tag")} disabled title="{note}"{match.group("attrs")}>'

    return _HX_UNSAFE.sub(disable, _FORM.sub(lock, html))
