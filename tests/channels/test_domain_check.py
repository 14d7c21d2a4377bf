"""The sending-domain checks (SPF, DKIM, DMARC, MX) against a real authoritative DNS server on
loopback: a passing domain, each failure, a time-out and SERVFAIL."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

import pytest

from channels.domaincheck.checks import FAIL, PASS, UNKNOWN, WARN, Line, Record, check_domain
from channels.domaincheck.esps import esp_for_host
from tests.dnsserver import DnsServer, dns_server

SENDGRID = "smtp.sendgrid.net"
ZONE = {
    "acme.test": [
        'TXT "v=spf1 include:_spf.google.com include:sendgrid.net ~all"',
        'TXT "google-site-verification=abc"',
        "MX 10 mx.acme.test.",
    ],
    "_spf.google.com": ['TXT "v=spf1 ip4:35.190.247.0/24 ~all"'],
    "sendgrid.net": ['TXT "v=spf1 ip4:167.89.0.0/17 ~all"'],
    "s1._domainkey.acme.test": ["CNAME s1.domainkey.u1.wl1.sendgrid.net."],
    "s1.domainkey.u1.wl1.sendgrid.net": ['TXT "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEB"'],
    "_dmarc.acme.test": ['TXT "v=DMARC1; p=quarantine; rua=mailto:d@acme.test"'],
    "mx.acme.test": ["A 192.0.2.25"],
    "relay.acme.test": ["A 192.0.2.10"],
}


@pytest.fixture
def zone(settings) -> Iterator[DnsServer]:
    with dns_server(copy.deepcopy(ZONE)) as server:
        settings.MSC_DNS_NAMESERVERS = [server.address]
        settings.MSC_DNS_TIMEOUT = 1
        yield server


def lines(host: str = SENDGRID, selector: str = "") -> dict[str, Line]:
    checked = check_domain("acme.test", host=host, esp=esp_for_host(host), selector=selector)
    assert [line.key for line in checked] == ["spf", "dkim", "dmarc", "mx"]
    return {line.key: line for line in checked}


def test_a_domain_set_up_for_sendgrid_passes_every_check(zone: DnsServer) -> None:
    found = lines()
    assert {key: line.state for key, line in found.items()} == dict.fromkeys(found, PASS)
    assert "authorises SendGrid (include:sendgrid.net)" in found["spf"].message
    assert "s1._domainkey.acme.test" in found["dkim"].message
    assert "p=quarantine" in found["dmarc"].message
    assert "mx.acme.test" in found["mx"].message
    assert all(line.record is None for line in found.values())


def _set(name: str, *rows: str) -> Callable[[dict[str, list[str]]], None]:
    def change(records: dict[str, list[str]]) -> None:
        if rows:
            records[name] = list(rows)
        else:
            records.pop(name, None)

    return change


def _spf(*rows: str) -> Callable[[dict[str, list[str]]], None]:
    return _set("acme.test", *rows, "MX 10 mx.acme.test.")


FAILURES = {
    "no SPF": (
        _spf('TXT "google-site-verification=abc"'),
        "spf",
        FAIL,
        "has no SPF record",
        Record("acme.test", "TXT", "v=spf1 include:sendgrid.net ~all"),
    ),
    "SPF without the ESP's include": (
        _spf('TXT "v=spf1 include:_spf.google.com ~all"'),
        "spf",
        FAIL,
        "does not authorise SendGrid: add include:sendgrid.net",
        Record("acme.test", "TXT", "v=spf1 include:_spf.google.com include:sendgrid.net ~all"),
    ),
    "two SPF records": (
        _spf('TXT "v=spf1 include:_spf.google.com ~all"', 'TXT "v=spf1 include:sendgrid.net -all"'),
        "spf",
        FAIL,
        "has 2 SPF records",
        Record("acme.test", "TXT", "v=spf1 include:_spf.google.com include:sendgrid.net -all"),
    ),
    "+all": (
        _spf('TXT "v=spf1 include:sendgrid.net +all"'),
        "spf",
        FAIL,
        "lets any server in the world send as it",
        Record("acme.test", "TXT", "v=spf1 include:sendgrid.net ~all"),
    ),
    "a bare all (which means +all)": (
        _spf('TXT "v=spf1 include:sendgrid.net all"'),
        "spf",
        FAIL,
        "ends in all",
        Record("acme.test", "TXT", "v=spf1 include:sendgrid.net ~all"),
    ),
    "an include without an SPF record (permerror)": (
        _spf('TXT "v=spf1 include:nowhere.test include:sendgrid.net ~all"'),
        "spf",
        FAIL,
        "include:nowhere.test has no SPF record",
        None,
    ),
    "no DKIM": (
        _set("s1._domainkey.acme.test"),
        "dkim",
        FAIL,
        "has no DKIM key at the selectors s1, s2",
        Record(
            "s1._domainkey.acme.test",
            "CNAME",
            "the CNAME value SendGrid shows under Settings → Sender Authentication "
            "(s1.domainkey.u<id>.wl<n>.sendgrid.net)",
        ),
    ),
    "revoked DKIM": (
        _set("s1.domainkey.u1.wl1.sendgrid.net", 'TXT "v=DKIM1; k=rsa; p="'),
        "dkim",
        FAIL,
        "is revoked (its p= is empty)",
        None,  # the record's name is checked below
    ),
    "no DMARC": (
        _set("_dmarc.acme.test"),
        "dmarc",
        WARN,
        "has no DMARC record",
        Record("_dmarc.acme.test", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test"),
    ),
    "DMARC p=none": (
        _set("_dmarc.acme.test", 'TXT "v=DMARC1; p=none; rua=mailto:d@acme.test"'),
        "dmarc",
        WARN,
        "policy is p=none",
        Record("_dmarc.acme.test", "TXT", "v=DMARC1; p=quarantine; rua=mailto:d@acme.test"),
    ),
    "strict SPF alignment with an ESP": (
        _set("_dmarc.acme.test", 'TXT "v=DMARC1; p=reject; aspf=s"'),
        "dmarc",
        WARN,
        "strict SPF alignment",
        Record("_dmarc.acme.test", "TXT", "v=DMARC1; p=reject; aspf=r"),
    ),
    "no MX": (
        _set("acme.test", 'TXT "v=spf1 include:_spf.google.com include:sendgrid.net ~all"'),
        "mx",
        WARN,
        "has no MX record, so replies and bounces to its addresses cannot come back",
        Record("acme.test", "MX", "10 <your incoming mail server>"),
    ),
}


@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_each_problem_is_named_with_the_record_to_add(zone: DnsServer, case: str) -> None:
    change, key, state, words, record = FAILURES[case]
    change(zone.records)
    found = lines()
    assert found[key].state == state, found[key]
    assert words in found[key].message
    if record is not None:
        assert found[key].record == record
    if case == "revoked DKIM":
        assert found[key].record is not None
        assert found[key].record.name == "s1._domainkey.acme.test"
    # Only the broken line changed.
    assert all(line.state == PASS for other, line in found.items() if other != key)


RELAY = "relay.acme.test"


@pytest.mark.parametrize(
    "spf",
    [
        "v=spf1 ip4:192.0.2.0/24 -all",
        "v=spf1 a:relay.acme.test -all",
        "v=spf1 mx:relay-mx.acme.test -all",
        "v=spf1 include:_spf.acme.test -all",
        "v=spf1 redirect=_spf.acme.test",
        "v=spf1 mx/24 -all",
    ],
)
def test_an_own_relay_passes_when_its_address_is_covered(zone: DnsServer, spf: str) -> None:
    # mx/24: acme.test's own MX host (192.0.2.25) and its /24 neighbours.
    zone.records["acme.test"] = [f'TXT "{spf}"', "MX 10 mx.acme.test."]
    zone.records["relay-mx.acme.test"] = ["MX 5 relay.acme.test."]
    zone.records["_spf.acme.test"] = ['TXT "v=spf1 ip4:192.0.2.10 -all"']
    found = lines(host=RELAY)
    assert found["spf"].state == PASS, found["spf"]
    assert "covers relay.acme.test (192.0.2.10)" in found["spf"].message


def test_an_own_relay_not_covered_is_a_fail_with_its_a_mechanism(zone: DnsServer) -> None:
    zone.records["acme.test"] = ['TXT "v=spf1 ip4:198.51.100.0/24 -all"', "MX 10 mx.acme.test."]
    spf = lines(host=RELAY)["spf"]
    assert spf.state == FAIL
    assert "does not cover relay.acme.test (192.0.2.10)" in spf.message
    assert spf.record == Record(
        "acme.test", "TXT", "v=spf1 ip4:198.51.100.0/24 a:relay.acme.test -all"
    )


def test_more_than_ten_lookups_is_a_fail(zone: DnsServer) -> None:
    includes = " ".join(f"include:i{n}.acme.test" for n in range(11))
    zone.records["acme.test"] = [f'TXT "v=spf1 {includes} ~all"', "MX 10 mx.acme.test."]
    for n in range(11):
        zone.records[f"i{n}.acme.test"] = ['TXT "v=spf1 ip4:192.0.2.10 ~all"']
    spf = lines(host=RELAY)["spf"]
    assert spf.state == FAIL
    assert "more than 10 DNS look-ups" in spf.message


def test_a_selector_the_admin_enters_is_checked(zone: DnsServer) -> None:
    sparkpost = "smtp.sparkpostmail.com"
    zone.records["acme.test"] = ['TXT "v=spf1 include:sparkpostmail.com ~all"', "MX 10 mx."]
    zone.records["sparkpostmail.com"] = ['TXT "v=spf1 ip4:192.0.2.0/24 ~all"']
    # SparkPost's selector is per account: without it, DKIM is a warning that asks for it.
    dkim = lines(host=sparkpost)["dkim"]
    assert dkim.state == WARN
    assert "Enter it below" in dkim.message
    zone.records["scph0117._domainkey.acme.test"] = ['TXT "v=DKIM1; k=rsa; p=MIGf"']
    found = lines(host=sparkpost, selector="scph0117")
    assert found["spf"].state == PASS
    assert found["dkim"].state == PASS
    assert "scph0117._domainkey.acme.test" in found["dkim"].message


@pytest.mark.parametrize("fault", ["servfail", "silent"])
def test_time_out_and_servfail_are_could_not_check_never_fail(settings, fault: str) -> None:
    names = {"acme.test", "_dmarc.acme.test", "s1._domainkey.acme.test", "s2._domainkey.acme.test"}
    with dns_server(copy.deepcopy(ZONE), **{fault: names}) as server:
        settings.MSC_DNS_NAMESERVERS = [server.address]
        settings.MSC_DNS_TIMEOUT = 1
        started = time.monotonic()
        found = lines()
        elapsed = time.monotonic() - started
    assert {line.state for line in found.values()} == {UNKNOWN}
    assert all(line.message.startswith(f"Could not check {line.label}") for line in found.values())
    assert all(line.record is None for line in found.values())
    # All look-ups of a domain share one budget (3 times MSC_DNS_TIMEOUT), whatever the silence.
    assert elapsed < 3 * 1 + 1.5


def test_a_mechanism_without_a_prefix_covers_only_its_own_addresses(zone: DnsServer) -> None:
    zone.records["acme.test"] = ['TXT "v=spf1 mx -all"', "MX 10 mx.acme.test."]
    spf = lines(host=RELAY)["spf"]
    assert spf.state == FAIL  # mx.acme.test is 192.0.2.25; the relay is 192.0.2.10
    assert spf.record == Record("acme.test", "TXT", "v=spf1 mx a:relay.acme.test -all")


def test_the_mx_placeholder_reads_in_the_readers_language() -> None:
    """Stored in English with the cached result, shown in each reader's language."""
    from django.utils import translation

    from channels.domaincheck.checks import shown_value

    stored_value = "10 <your incoming mail server>"
    with translation.override("pt-br"):
        assert shown_value(stored_value) == "10 <seu servidor de e-mail de entrada>"
    with translation.override("es"):
        assert shown_value(stored_value) == "10 <su servidor de correo entrante>"
    assert shown_value("v=DMARC1; p=reject") == "v=DMARC1; p=reject"
