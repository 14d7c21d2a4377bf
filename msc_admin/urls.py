from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from accounts import views as account_views
from msc_admin import views

# The Django admin uses allauth's login (rate limits, MFA) instead of its own form.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = _("msc-admin administration")

urlpatterns = [
    path("", account_views.home, name="home"),
    path("health/", views.health, name="health"),
    # The signed-out pages' language choice (a visitor's, kept in the language cookie); a POST
    # with the CSRF token only: a GET would change nothing and has nothing to show.
    path("i18n/setlang/", require_POST(set_language), name="set_language"),
    # Google One Tap sign-in: allauth adds it with the Google provider, exempt from Django's
    # CSRF check. We use Google only to connect Gmail, never to sign in, so it is switched off.
    path("accounts/google/login/token/", views.not_offered),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("channels/", include("channels.urls")),
    path("", include("sending.urls")),
    path("", include("bounces.urls")),
    path("analytics/", include("reports.urls")),
    path("staff/", include("staff.urls")),
    path("django-admin/", admin.site.urls),
]

handler400 = "msc_admin.views.bad_request"
handler403 = "msc_admin.views.permission_denied"
handler404 = "msc_admin.views.page_not_found"
handler500 = "msc_admin.views.server_error"
