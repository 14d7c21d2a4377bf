"""The DNS look-ups against a real authoritative server on loopback."""

from __future__ import annotations

import time

import pytest

from channels import dns
from tests.dnsserver import dns_server


@pytest.fixture
def zone(settings):
    with dns_server(
        {
            "acme.test": [
                'TXT "v=spf1 include:sendgrid.net ~all"',
                "MX 10 mx2.acme.test.",
                "MX 5 MX1.acme.test.",
            ],
            "_dmarc.acme.test": ['TXT "v=DMARC1; p=quarantine"'],
            "s1._domainkey.acme.test": ["CNAME s1.domainkey.u1.wl.sendgrid.net."],
            "s1.domainkey.u1.wl.sendgrid.net": ['TXT "v=DKIM1; k=rsa; p=MIGf"'],
        },
        servfail={"broken.test"},
        silent={"slow.test"},
    ) as server:
        settings.MSC_DNS_NAMESERVERS = [server.address]
        settings.MSC_DNS_TIMEOUT = 1
        yield server


def test_answers_come_back_as_text(zone) -> None:
    assert dns.txt("acme.test") == ["v=spf1 include:sendgrid.net ~all"]
    assert dns.mx("acme.test") == [(5, "mx1.acme.test"), (10, "mx2.acme.test")]
    assert dns.cname("s1._domainkey.acme.test") == "s1.domainkey.u1.wl.sendgrid.net"
    # A CNAME is followed for other types.
    assert dns.txt("s1._domainkey.acme.test") == ["v=DKIM1; k=rsa; p=MIGf"]


def test_a_missing_name_or_type_is_an_empty_answer(zone) -> None:
    assert dns.txt("nowhere.test") == []
    assert dns.mx("_dmarc.acme.test") == []
    assert dns.txt("bad..name") == []


def test_servfail_and_silence_are_could_not_check(zone) -> None:
    with pytest.raises(dns.CouldNotCheck, match="gave no answer"):
        dns.txt("broken.test")
    started = time.monotonic()
    with pytest.raises(dns.CouldNotCheck, match="in time"):
        dns.mx("slow.test")
    assert time.monotonic() - started < 5
