"""A walk through the site as each persona: every internal link answers, every page is styled."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import pytest
from django.test import Client

SKIP = ("/accounts/logout/", "/django-admin/", "/static/", "/health/")


def _walk(client: Client, start: str = "/") -> dict[str, int]:
    seen: dict[str, int] = {}
    queue = [start]
    while queue and len(seen) < 80:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url, follow=True)
        seen[url] = response.status_code
        if "text/html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        assert "/static/css/app" in html, f"{url} is not styled"
        assert "<h1" in html, f"{url} has no heading"
        for href in re.findall(r'href="([^"#]+)"', html):
            target = urlparse(urljoin(url, href))
            if target.netloc or target.path.startswith(SKIP):
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


@pytest.mark.parametrize(
    "persona", ["rep_client", "admin_client", "staff_client", "outsider_client"]
)
def test_no_dead_links_for(request: pytest.FixtureRequest, persona: str) -> None:
    seen = _walk(request.getfixturevalue(persona))
    broken = {url: code for url, code in seen.items() if code >= 400}
    assert not broken, broken
    assert len(seen) >= 3


@pytest.mark.django_db
def test_no_dead_links_signed_out(client: Client) -> None:
    seen = _walk(client, "/accounts/login/")
    assert not {url: code for url, code in seen.items() if code >= 400}
