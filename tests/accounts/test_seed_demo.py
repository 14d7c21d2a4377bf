from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import Membership, Tenant, User

DEMO_USERS = [
    "admin@acme.test",
    "rep@acme.test",
    "admin@globex.test",
    "rep@globex.test",
    "staff@msc.test",
]


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_is_idempotent_and_every_demo_user_can_sign_in() -> None:
    call_command("seed_demo")
    counts = (User.objects.count(), Tenant.objects.count(), Membership.objects.count())
    call_command("seed_demo")
    assert (
        (User.objects.count(), Tenant.objects.count(), Membership.objects.count())
        == counts
        == (5, 2, 4)
    )
    assert Tenant.objects.get(slug="globex").legacy_toutapp
    assert not Tenant.objects.get(slug="acme").legacy_toutapp
    assert User.objects.get(email="staff@msc.test").is_staff

    with override_settings(MSC_REQUIRE_MFA=False):
        for email in DEMO_USERS:
            client = Client()
            response = client.post(
                reverse("account_login"), {"login": email, "password": "demo-password-123"}
            )
            assert response.status_code == 302, email
            landing = client.get(reverse("home"), follow=True)
            assert landing.status_code == 200, email


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_seed_demo_refuses_without_debug_unless_forced() -> None:
    with pytest.raises(CommandError, match="refuses to run with DEBUG=false"):
        call_command("seed_demo")
    assert not User.objects.exists()
    call_command("seed_demo", force=True)
    assert User.objects.count() == 5
