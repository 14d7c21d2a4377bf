"""The screenshots command's browser part, against the test server: it signs in as a persona
and writes each page at both widths, the whole page tall."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from accounts.models import Role
from tests.browser import screenshots
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.browser


def _size(png: Path) -> tuple[int, int]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_each_page_is_saved_at_desktop_and_phone_width(
    live_url: str, tmp_path: Path, settings, monkeypatch
) -> None:
    settings.MSC_REQUIRE_MFA = False
    acme = TenantFactory(name="Acme", slug="acme")
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    rep.set_password(screenshots.PASSWORD)
    rep.save()
    persona = screenshots.Persona("rep", "rep@acme.test", (("home", "/"), ("outbox", "/outbox/")))
    written = screenshots.capture(live_url, (persona,), tmp_path)
    assert sorted(p.name for p in written) == [
        "rep-home-1280.png",
        "rep-home-390.png",
        "rep-outbox-1280.png",
        "rep-outbox-390.png",
    ]
    wide, narrow = _size(tmp_path / "rep-outbox-1280.png"), _size(tmp_path / "rep-outbox-390.png")
    assert wide[0] == 1280 and narrow[0] == 390  # nothing wider than the phone's screen
    assert narrow[1] >= 844  # the whole page, at least one screen tall


def test_a_refused_sign_in_is_said_not_photographed(live_url: str, tmp_path: Path) -> None:
    persona = screenshots.Persona("nobody", "nobody@acme.test", (("home", "/"),))
    with pytest.raises(RuntimeError, match=r"could not sign in as nobody@acme\.test"):
        screenshots.capture(live_url, (persona,), tmp_path)
    assert not list(tmp_path.glob("*.png"))
