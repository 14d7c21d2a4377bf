from django.urls import path

from reports import views

app_name = "analytics"

urlpatterns = [
    path("", views.analytics_overview, name="overview"),
    path("campaigns/", views.campaign_analytics, name="campaigns"),
    path("templates.csv", views.template_csv, name="template_csv"),
    path("campaigns.csv", views.campaign_csv, name="campaign_csv"),
    path("breakdown/", views.breakdown, name="breakdown"),
    path("reasons.csv", views.reason_csv, name="reason_csv"),
    path("domains.csv", views.domain_csv, name="domain_csv"),
    path("providers.csv", views.provider_csv, name="provider_csv"),
    path("templates/<int:key>.csv", views.template_bounces_csv, name="template_bounces_csv"),
    path("live/", views.live_feed, name="live_feed"),
    path("live/newer/", views.live_feed_newer, name="live_feed_newer"),
    path("templates/<int:key>/", views.template_bounces, name="template_bounces"),
]
