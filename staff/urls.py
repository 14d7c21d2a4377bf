from django.urls import path

from staff import views

app_name = "staff"

urlpatterns = [
    path("", views.staff_home, name="home"),
    path("tenants/new/", views.tenant_create, name="tenant_create"),
    path("tenants/<int:pk>/", views.tenant_detail, name="tenant"),
    path("tenants/<int:pk>/progress/", views.tenant_progress, name="tenant_progress"),
    path("tenants/<int:pk>/legacy/", views.tenant_legacy, name="tenant_legacy"),
    path("tenants/<int:pk>/view-as/", views.view_as, name="view_as"),
    path("view-as/stop/", views.view_as_stop, name="view_as_stop"),
    path("legacy/", views.legacy_report, name="legacy"),
    path("servers/", views.servers, name="servers"),
    path("servers/<int:pk>/", views.server_edit, name="server_edit"),
    path("servers/<int:pk>/enabled/", views.server_enabled, name="server_enabled"),
    path("servers/<int:pk>/check/", views.server_check, name="server_check"),
    path("audit/", views.audit_log, name="audit"),
    path("account/", views.account, name="account"),
]
