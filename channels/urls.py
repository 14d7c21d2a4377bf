from django.urls import path

from channels import views

app_name = "channels"

urlpatterns = [
    path("", views.channel_overview, name="overview"),
]
