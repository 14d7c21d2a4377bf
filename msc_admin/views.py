"""Project-level views: health and the error handlers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from msc_admin.celery import app as celery_app

logger = logging.getLogger(__name__)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    cache.set("health:probe", "1", timeout=10)
    if cache.get("health:probe") != "1":
        raise RuntimeError("value written was not read back")
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "in-process"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Reports each dependency as ok / in-process / error. 503 when any is in error.

    Public on purpose (load balancers call it), so it names no hosts and no exception text.
    """
    checks = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception:
            logger.exception("health check %s failed", name)
            results[name] = "error"
    healthy = "error" not in results.values()
    return JsonResponse(
        {"status": "ok" if healthy else "error", **results}, status=200 if healthy else 503
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else ""
    return render(request, "errors/403.html", {"message": message}, status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form refused by the CSRF check: the product's own page, saying what to do.

    Django's default page speaks to developers (and in English); people meet this after leaving a
    form open past their session, or after signing out in another tab. ``reason`` is logged only.
    """
    logger.warning("CSRF check refused %s %s: %s", request.method, request.path, reason)
    message = _(
        "This form could not be sent, because the page was open too long or you signed in or "
        "out in another tab. Go back, reload the page and try again; nothing was changed."
    )
    return render(request, "errors/403.html", {"message": message}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Rendered without context processors: the failure may be in one of them.
    from django.template import loader

    return HttpResponse(loader.get_template("errors/500.html").render(), status=500)


def not_offered(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Routes a library brings that this product does not use answer 404."""
    raise Http404
