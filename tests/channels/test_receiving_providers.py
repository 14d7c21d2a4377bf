"""Receiving domains classified by their MX (Google, Microsoft, other), against a real
authoritative DNS server on loopback, and cached per domain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from channels import providers
from channels.models import Identity, ReceivingDomain
from sending import domainlimits
from tests.bounces.conftest import mark_sent
from tests.dnsserver import DnsServer, dns_server
from tests.sending.conftest import queue_message, relay, rep_identity, team_channel  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def zone(settings) -> Iterator[DnsServer]:
    with dns_server(
        {
            "workspace.test": ["MX 1 ASPMX.L.GOOGLE.COM.", "MX 5 alt1.aspmx.l.google.com."],
            "contoso.test": ["MX 0 contoso-test.mail.protection.outlook.com."],
            "fastmail.test": ["MX 10 in1-smtp.messagingengine.com."],
            # Google only as a backup: the most preferred host decides.
            "mixed.test": ["MX 5 mx.mixed.test.", "MX 10 aspmx.l.google.com."],
            "nomx.test": ['TXT "v=spf1 -all"'],
        },
        servfail={"broken.test"},
        silent={"slow.test"},
    ) as server:
        settings.MSC_DNS_NAMESERVERS = [server.address]
        settings.MSC_DNS_TIMEOUT = 1
        yield server


def _row(domain: str) -> ReceivingDomain:
    return ReceivingDomain.objects.get(domain=domain)


def test_domains_are_classified_by_their_mx_and_cached(zone: DnsServer) -> None:
    found = providers.domains_classify(
        ["workspace.test", "contoso.test", "fastmail.test", "mixed.test", "nomx.test"]
    )
    assert found == {
        "workspace.test": providers.GOOGLE,
        "contoso.test": providers.MICROSOFT,
        "fastmail.test": providers.OTHER,
        "mixed.test": providers.OTHER,
        "nomx.test": providers.OTHER,
    }
    assert _row("workspace.test").mx_host == "aspmx.l.google.com"
    assert _row("contoso.test").mx_host == "contoso-test.mail.protection.outlook.com"
    assert providers.provider_of("WorkSpace.test") == providers.GOOGLE  # from the cache

    # Re-used for a week: no look-up at all.
    asked = len(zone.queries)
    assert providers.domains_classify(["workspace.test", "contoso.test"]) == {}
    assert len(zone.queries) == asked
    # After a week, looked up again.
    ReceivingDomain.objects.filter(domain="workspace.test").update(
        checked_at=timezone.now() - providers.RECHECK - timedelta(minutes=1)
    )
    assert providers.domains_classify(["workspace.test", "contoso.test"]) == {
        "workspace.test": providers.GOOGLE
    }
    assert zone.queries[asked:] == [("workspace.test", "MX")]


def test_consumer_domains_need_no_look_up(zone: DnsServer, django_assert_num_queries) -> None:
    assert providers.domains_classify(["gmail.com", "hotmail.com", "yahoo.co.uk", "aol.com"]) == {}
    assert zone.queries == [] and not ReceivingDomain.objects.exists()
    with django_assert_num_queries(0):  # every batch of bounces asks: nothing to read
        assert providers.providers_of(["GMAIL.com", "live.com", "yahoo.fr", "ymail.com"]) == {
            "gmail.com": providers.GOOGLE,
            "live.com": providers.MICROSOFT,
            "yahoo.fr": providers.YAHOO,
            "ymail.com": providers.YAHOO,
        }


def test_other_domains_are_read_from_the_cache_in_one_query(django_assert_num_queries) -> None:
    ReceivingDomain.objects.create(
        domain="workspace.test", provider=providers.GOOGLE, checked_at=timezone.now()
    )
    with django_assert_num_queries(1):
        found = providers.providers_of(["Workspace.test", "gmail.com", "contoso.test"])
    assert found == {
        "workspace.test": providers.GOOGLE,
        "gmail.com": providers.GOOGLE,
        "contoso.test": providers.UNKNOWN,
    }


def test_a_look_up_without_an_answer_leaves_the_domain_unknown_and_retries_later(
    zone: DnsServer,
) -> None:
    found = providers.domains_classify(["slow.test", "broken.test"])
    assert found == {"slow.test": providers.UNKNOWN, "broken.test": providers.UNKNOWN}
    assert "in time" in _row("slow.test").detail
    assert "no answer" in _row("broken.test").detail
    assert providers.provider_of("slow.test") == providers.UNKNOWN

    # Not asked again within the hour …
    asked = len(zone.queries)
    assert providers.domains_classify(["slow.test"]) == {}
    assert len(zone.queries) == asked
    # … but after it; the server answers now.
    zone.silent.clear()
    zone.records["slow.test"] = ["MX 1 aspmx.l.google.com."]
    ReceivingDomain.objects.filter(domain="slow.test").update(
        checked_at=timezone.now() - providers.RETRY_UNKNOWN - timedelta(minutes=1)
    )
    assert providers.domains_classify(["slow.test"]) == {"slow.test": providers.GOOGLE}
    assert _row("slow.test").detail == ""


def test_a_known_domain_stays_known_when_its_re_check_gets_no_answer(zone: DnsServer) -> None:
    providers.domains_classify(["workspace.test"])
    ReceivingDomain.objects.filter(domain="workspace.test").update(
        checked_at=timezone.now() - providers.RECHECK - timedelta(minutes=1)
    )
    zone.servfail.add("workspace.test")
    assert providers.domains_classify(["workspace.test"]) == {}
    row = _row("workspace.test")
    assert row.provider == providers.GOOGLE and "no answer" in row.detail
    assert providers.due(["workspace.test"]) == []  # tried again in an hour, not at once


def test_the_periodic_run_classifies_the_domains_of_queued_and_recent_mail(
    zone: DnsServer,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,  # noqa: F811
) -> None:
    queue_message(acme, rep_user, rep_identity, to="ann@workspace.test")
    sent = mark_sent(queue_message(acme, rep_user, rep_identity, to="bo@contoso.test"))
    rollups.count_sent(sent, sent.sent_at)
    queue_message(acme, rep_user, rep_identity, to="cy@gmail.com")
    assert domainlimits.classify_recent() == 2
    assert dict(ReceivingDomain.objects.values_list("domain", "provider")) == {
        "workspace.test": providers.GOOGLE,
        "contoso.test": providers.MICROSOFT,
    }
    assert domainlimits.classify_recent() == 0
