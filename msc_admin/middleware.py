"""The product's own error pages in the embedded demo (DEBUG on)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from msc_admin import views

logger = logging.getLogger(__name__)


class ProductErrorPagesMiddleware:
    """With DEBUG on, Django answers a 404 with a page listing every URL pattern and an error
    with a traceback and the settings. The embedded demo is DEBUG, and it is what new users
    try: there it answers with the product's own 404 and 500 pages, as production does
    (``handler404`` / ``handler500``). ``MSC_DEBUG_PAGES=true`` brings Django's back for
    development; without DEBUG this does nothing.

    Placed after the session, CSRF, message and CSP middleware (their headers and cookies
    apply to the page) and before the ones that may refuse a request with a 404 (the staff
    gate), whose answer reaches it as a response: a 404 or 500 that no view produced (no URL
    matched, or a middleware refused or failed) becomes ours. Errors raised in a view are
    caught in ``process_exception``; pages a view renders itself (a 404 with its own words)
    are left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _active() or request.resolver_match is not None:
            return response
        if response.status_code == 404:
            return views.page_not_found(request)
        if response.status_code == 500:
            return views.server_error(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _active() or isinstance(
            exception, (PermissionDenied, BadRequest, SuspiciousOperation)
        ):
            return None  # Django's own handling (403 already uses our page)
        if isinstance(exception, Http404):
            return views.page_not_found(request, exception)
        # Django logs the 500 response; the traceback is logged here, never shown.
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return views.server_error(request)


def _active() -> bool:
    return bool(settings.DEBUG and not settings.MSC_DEBUG_PAGES)


class MethodNotAllowedPageMiddleware:
    """A browser opening an address that only takes a form (``require_POST``: a button's
    action, or the page a failed form was sent to, reloaded) gets a page that says so, not
    Django's empty 405. Answers that have their own words (the JSON endpoint's) and htmx
    requests are left alone; the ``Allow`` header is kept."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code != 405
            or response.content
            or request.method not in ("GET", "HEAD")
            or request.headers.get("HX-Request")
        ):
            return response
        referer = request.headers.get("Referer", "")
        back = referer if url_has_allowed_host_and_scheme(referer, {request.get_host()}) else ""
        page = render(request, "errors/405.html", {"back": back}, status=405)
        if "Allow" in response:
            page["Allow"] = response["Allow"]
        return page
