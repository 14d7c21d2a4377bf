from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.access import recently_authenticated

View = Callable[..., HttpResponse]


def recent_auth_required(view: View) -> View:
    """Credentials change only after the user signed in or confirmed their password in the
    last minutes (``recently_authenticated``, the staff console's rule too).

    Unlike allauth's own decorator, a POST is never stashed in the session to be replayed after
    re-authentication: it would carry the new password. The user re-enters it instead.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not recently_authenticated(request):
            if request.method == "POST":
                messages.warning(
                    request,
                    _(
                        "For your security, confirm your password first, then enter the "
                        "credentials again. Nothing was saved."
                    ),
                )
            query = urlencode({"next": request.path})
            return redirect(f"{reverse('account_reauthenticate')}?{query}")
        return view(request, *args, **kwargs)

    return wrapper


def htmx_done(response: HttpResponse, event: str) -> HttpResponse:
    response["HX-Trigger"] = event
    return response
