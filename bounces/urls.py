from django.urls import path

from . import views, webhooks

app_name = "bounces"

urlpatterns = [
    path("bounces/", views.bounce_list, name="list"),
    path("bounces/<int:pk>/", views.bounce_detail, name="detail"),
    path("bounces/<int:pk>/not-a-bounce/", views.bounce_undo, name="undo"),
    path("bounces/<int:pk>/re-check/", views.bounce_recheck, name="recheck"),
    path("bounces/spikes/", views.spike_list, name="spikes"),
    path("bounces/spikes/<int:pk>/", views.spike_detail, name="spike"),
    path("bounces/spikes/<int:pk>/resume/", views.spike_resolve, name="spike_resolve"),
    path("bounces/inbox/<int:pk>/scan/", views.scan_now, name="scan"),
    path("bounces/inbox/<int:pk>/", views.scan_status, name="scan_status"),
    path("bounces/inbox/<int:pk>/reading/", views.reading_path, name="reading"),
    path("bounces/webhook/<int:pk>/", views.webhook_issue, name="webhook_issue"),
    path(
        "webhooks/sendgrid/<str:key>/", webhooks.SendGridWebhook.as_view(), name="webhook_sendgrid"
    ),
    path(
        "webhooks/sparkpost/<str:key>/",
        webhooks.SparkPostWebhook.as_view(),
        name="webhook_sparkpost",
    ),
]
