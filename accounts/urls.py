from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("settings/", views.settings_page, name="settings"),
    path("settings/name/", views.account_name, name="name"),
    path("settings/language/", views.account_language, name="language"),
    path("settings/users/", views.users_list, name="users"),
    path("settings/users/<int:pk>/role/", views.membership_role, name="membership_role"),
    path("settings/users/<int:pk>/active/", views.membership_active, name="membership_active"),
    path("settings/users/<int:pk>/resend/", views.membership_resend, name="membership_resend"),
    path("invite/<str:uidb64>/<str:token>/", views.invite_accept, name="invite_accept"),
]
