from django.urls import path

from sending.views import api, campaigns, library, outbox, suppressions

app_name = "sending"

urlpatterns = [
    path("outbox/", outbox.outbox, name="outbox"),
    path("outbox/compose/", outbox.compose, name="compose"),
    path("outbox/held/send/", outbox.reroute_held, name="reroute_held"),
    path("outbox/<str:folder>/", outbox.outbox, name="outbox_folder"),
    path("messages/<int:pk>/retry/", outbox.message_retry, name="retry"),
    path("messages/<int:pk>/delete/", outbox.message_delete, name="delete"),
    path("templates/", library.template_list, name="templates"),
    path("templates/new/", library.template_edit, name="template_new"),
    path("templates/<int:pk>/", library.template_edit, name="template_edit"),
    path("templates/<int:pk>/delete/", library.template_delete, name="template_delete"),
    path("contacts/", library.contact_list, name="contacts"),
    path("contacts/import/", library.contact_import, name="contact_import"),
    path("contacts/import/<int:pk>/", library.contact_import_status, name="contact_import_status"),
    path("suppressions/", suppressions.suppression_list, name="suppressions"),
    path("suppressions/add/", suppressions.suppression_add, name="suppression_add"),
    path("suppressions/remove/", suppressions.suppressions_remove, name="suppressions_remove"),
    path("suppressions/import/", suppressions.suppressions_import, name="suppressions_import"),
    path("suppressions/export.csv", suppressions.suppressions_export, name="suppressions_export"),
    path("campaigns/", campaigns.campaign_list, name="campaigns"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign"),
    path("campaigns/<int:pk>/steps/", campaigns.step_add, name="step_add"),
    path("campaigns/<int:pk>/steps/<int:step>/remove/", campaigns.step_remove, name="step_remove"),
    path("campaigns/<int:pk>/enroll/", campaigns.enroll, name="enroll"),
    path("campaigns/<int:pk>/<str:action>/", campaigns.campaign_action, name="campaign_action"),
    path("settings/api-tokens/", api.tokens, name="api_tokens"),
    path("settings/api-tokens/<int:pk>/revoke/", api.token_revoke, name="api_token_revoke"),
    path("api/v1/messages", api.api_messages, name="api_messages"),
]
