from django.urls import path

from channels.views import domaincheck, identities, settings, team, testing

app_name = "channels"

urlpatterns = [
    path("", settings.channel_overview, name="overview"),
    path("smtp/", settings.smtp_edit, name="smtp_edit"),
    path("exchange/", settings.exchange_edit, name="exchange_edit"),
    path("legacy/", settings.legacy_select, name="legacy_select"),
    path("<int:pk>/remove/", settings.channel_remove, name="remove"),
    path("<int:pk>/test/", testing.channel_test, name="test"),
    path("<int:pk>/test-email/", testing.channel_test_email, name="test_email"),
    path("<int:pk>/trial/", settings.trial_account, name="trial_account"),
    path("<int:pk>/send-as/", settings.send_as_refresh, name="send_as_refresh"),
    path("<int:pk>/dns-check/", domaincheck.domain_check, name="domain_check"),
    path("identities/", identities.identity_add, name="identity_add"),
    path("identities/<int:pk>/resend/", identities.identity_resend, name="identity_resend"),
    path("identities/<int:pk>/channel/", identities.identity_channel, name="identity_channel"),
    path("identities/<int:pk>/name/", identities.identity_name, name="identity_name"),
    path("identities/verify/<str:token>/", identities.identity_verify, name="identity_verify"),
    path("team/", team.team_settings, name="team"),
    path("team/smtp/", team.team_smtp_edit, name="team_smtp_edit"),
    path("team/throttling/", team.throttling_update, name="throttling"),
    path("team/spike-protection/", team.spike_protection_update, name="spike_protection"),
    path("team/soft-bounces/", team.soft_bounces_update, name="soft_bounces"),
    path("team/blocked-domains/", team.blocked_domain_add, name="blocked_add"),
    path(
        "team/blocked-domains/<int:pk>/remove/", team.blocked_domain_remove, name="blocked_remove"
    ),
    path("team/domain-limits/", team.domain_cap_add, name="domain_cap_add"),
    path("team/domain-limits/<int:pk>/remove/", team.domain_cap_remove, name="domain_cap_remove"),
    path("team/audit/", team.audit_log, name="audit"),
]
