from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD


def reauthenticate(client: Client, password: str = PASSWORD) -> None:
    """Confirm the password, as the credential forms require."""
    response = client.post(reverse("account_reauthenticate"), {"password": password})
    assert response.status_code == 302, response.content[:500]


@pytest.fixture
def fresh_admin_client(admin_client: Client, admin_user: User) -> Client:
    reauthenticate(admin_client)
    return admin_client


@pytest.fixture
def fresh_rep_client(rep_client: Client, rep_user: User) -> Client:
    reauthenticate(rep_client)
    return rep_client
