"""Fifty people signing in at once from one address (an office behind NAT): within the
configured limits every one of them signs in; above them, the limit holds exactly. Against the
real Redis that bin/test starts, where the limits are kept for every web process."""

from __future__ import annotations

import inspect
import threading
from collections import Counter

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from django.test import Client
from django.urls import reverse

from accounts import ratelimit
from accounts.models import Tenant
from tests.factories import PASSWORD, MembershipFactory

PEOPLE = 50


def _sign_in_at_once(emails: list[str]) -> Counter[int]:
    """Every address signs in from its own browser, all released at the same moment."""
    start = threading.Barrier(len(emails))
    statuses: list[int] = []

    def sign_in(email: str) -> None:
        try:
            client = Client(REMOTE_ADDR="203.0.113.7")
            start.wait(timeout=30)
            response = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign_in, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return Counter(statuses)


@pytest.fixture
def office(acme: Tenant) -> list[str]:
    assert isinstance(caches["default"], RedisCache), "bin/test runs the suite with REDIS_URL"
    return [
        MembershipFactory(tenant=acme, user__email=f"person{n}@acme.test").user.email
        for n in range(PEOPLE)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_burst_within_the_limits_all_signs_in(office: list[str], settings) -> None:
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login": "1000/m/ip",
        "login_failed": "1000/m/ip,5/5m/key",
    }
    statuses = _sign_in_at_once(office)
    assert statuses == Counter({302: PEOPLE}), statuses


@pytest.mark.django_db(transaction=True)
def test_a_burst_above_the_limit_is_limited_exactly(office: list[str], settings) -> None:
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "login": "20/m/ip",
        "login_failed": "1000/m/ip,5/5m/key",
    }
    statuses = _sign_in_at_once(office)
    assert statuses == Counter({302: 20, 429: PEOPLE - 20}), statuses


@pytest.mark.django_db
def test_successful_sign_ins_do_not_count_as_failed_ones(office: list[str], settings) -> None:
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "3/m/ip"}
    client = Client(REMOTE_ADDR="203.0.113.7")
    url = reverse("account_login")
    for email in office[:5]:  # each attempt counts until it succeeds, then is taken back
        assert client.post(url, {"login": email, "password": PASSWORD}).status_code == 302
        client.logout()
    wrong = {"login": office[0], "password": "not-the-password"}
    for _ in range(3):
        assert b"not correct" in client.post(url, wrong).content
    refused = client.post(url, {"login": office[1], "password": PASSWORD})
    assert refused.status_code == 200 and b"Too many failed login attempts" in refused.content


def test_allauths_limiter_counts_in_redis_with_its_own_signatures() -> None:
    from allauth.core.internal import ratelimit as allauth_ratelimit

    for name, ours in (
        ("_consume_single_rate", ratelimit.consume_single_rate),
        ("clear", ratelimit.clear),
    ):
        assert getattr(allauth_ratelimit, name) is ours
        original = ratelimit.ALLAUTH[name]
        assert inspect.signature(ours).parameters.keys() == (
            inspect.signature(original).parameters.keys()  # type: ignore[arg-type]
        )
