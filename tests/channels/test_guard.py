"""The outbound guard refuses everything that is not a public address on an allowed port."""

from __future__ import annotations

import pytest

from channels.guard import SMTP_PORTS, OutboundRefused, check_destination


@pytest.fixture(autouse=True)
def _production_guard(settings) -> None:
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = False


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "::1",
        "::ffff:127.0.0.1",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",
        "localhost",  # a name resolving to a loopback address
        "192.168.1.10",
        "172.16.0.5",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",
        "fc00::1",
        "fe80::1",
    ],
)
def test_non_public_destinations_are_refused(host: str) -> None:
    with pytest.raises(OutboundRefused, match=r"not a public internet address|does not resolve"):
        check_destination(host, 587, allowed_ports=SMTP_PORTS)


def test_a_public_address_on_an_allowed_port_passes_and_is_pinned() -> None:
    destination = check_destination("1.1.1.1", 587, allowed_ports=SMTP_PORTS)
    assert destination.addresses == ("1.1.1.1",)
    assert destination.host == "1.1.1.1"


@pytest.mark.parametrize("port", [22, 80, 6379, 8025, 5432])
def test_public_addresses_on_other_ports_are_refused(port: int) -> None:
    with pytest.raises(OutboundRefused, match=f"Port {port} is not allowed"):
        check_destination("1.1.1.1", port, allowed_ports=SMTP_PORTS)


@pytest.mark.parametrize(
    "host", ["smtp://relay.example.com", "relay.example.com/x", "a b", "", "user@host"]
)
def test_malformed_hosts_are_refused_with_a_hint(host: str) -> None:
    with pytest.raises(OutboundRefused):
        check_destination(host, 587, allowed_ports=SMTP_PORTS)


def test_development_mode_reaches_loopback_on_any_port(settings) -> None:
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = True
    assert check_destination("127.0.0.1", 8025, allowed_ports=SMTP_PORTS).address == "127.0.0.1"


# --- the test-only allow-list: exact pairs, nothing more --------------------------------------


def test_the_test_allow_list_lets_through_exactly_its_address_and_port(settings) -> None:
    settings.MSC_OUTBOUND_TEST_ALLOW = frozenset({"127.0.0.1:40125", "[::1]:40126"})
    assert check_destination("127.0.0.1", 40125, allowed_ports=SMTP_PORTS).addresses == (
        "127.0.0.1",
    )
    assert check_destination("::1", 40126, allowed_ports=SMTP_PORTS).address == "::1"


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 40126),  # the same address on another port
        ("127.0.0.1", 587),  # even an SMTP port
        ("127.0.0.2", 40125),  # another loopback address on the same port
        ("::1", 40125),  # the allowed port on an address not listed
        ("10.0.0.1", 40125),
    ],
)
def test_everything_else_stays_refused_with_the_allow_list_set(
    settings, host: str, port: int
) -> None:
    settings.MSC_OUTBOUND_TEST_ALLOW = frozenset({"127.0.0.1:40125"})
    with pytest.raises(OutboundRefused, match="not a public internet address"):
        check_destination(host, port, allowed_ports=SMTP_PORTS)


def test_the_allow_list_is_empty_and_not_read_from_the_environment(tmp_path) -> None:
    from tests.msc_admin.test_settings import _manage

    script = "from django.conf import settings; print(sorted(settings.MSC_OUTBOUND_TEST_ALLOW))"
    env = {"MSC_VAR_DIR": str(tmp_path), "MSC_OUTBOUND_TEST_ALLOW": "127.0.0.1:25"}
    result = _manage("shell", "--no-imports", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
