from django.http import HttpRequest, HttpResponse
from django.urls import path

from msc_admin.urls import handler400, handler403, handler404, handler500, urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("kaboom: secret-looking detail that must not reach the page")


urlpatterns = [path("boom/", boom), *urlpatterns]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
