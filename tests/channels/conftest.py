from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from msc_admin.devtls import Certificates, make_certificates
from tests.factories import PASSWORD


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(autouse=True)
def _trust_test_ca(settings, certs: Certificates) -> None:
    settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)


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
