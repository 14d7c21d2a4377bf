from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.analytics_overview, name="overview"),
    path("campaigns/", views.campaign_analytics, name="campaigns"),
    path("templates.csv", views.template_csv, name="template_csv"),
    path("campaigns.csv", views.campaign_csv, name="campaign_csv"),
    path("live/", views.live_feed, name="live_feed"),
    path("live/newer/", views.live_feed_newer, name="live_feed_newer"),
    path("templates/<int:key>/", views.template_bounces, name="template_bounces"),
]
