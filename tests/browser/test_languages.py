"""A person who reads Portuguese or Spanish finds no English in Chromium either: a few
representative pages per persona, each rendered by the browser once in English and once in
the language under test, compared with the checker of ``tests/test_languages`` (which walks
every page through the client)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.browser.conftest import new_page, save_steps, step
from tests.security.conftest import World, fresh_client, world  # noqa: F401
from tests.test_languages import data_words, english_left

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SIDEWAYS = "document.documentElement.scrollWidth - window.innerWidth"

PAGES = {
    "visitor": ["account_login", "account_reset_password"],
    "rep": ["home", "sending:outbox", "analytics:live_feed", "sending:templates"],
    "admin": [
        "home",
        "sending:outbox",
        "sending:suppressions",
        "channels:team",
        "channels:audit",
        "analytics:overview",
    ],
}


@pytest.mark.parametrize("language", ["pt-br", "es"])
@pytest.mark.parametrize("persona", ["visitor", "rep", "admin"])
def test_no_english_is_left_in_the_browser(
    browser,
    live_url: str,
    world: World,  # noqa: F811
    persona: str,
    language: str,
    request: pytest.FixtureRequest,
) -> None:
    user = {"rep": world.rep, "admin": world.admin}.get(persona)
    client = fresh_client(user) if user else Client()
    urls = [reverse(name) for name in PAGES[persona]]
    data = data_words()
    rendered: dict[str, dict[str, str]] = {}
    sideways: list[str] = []
    for shown in ("en", language):
        if user is not None:  # their own choice; a visitor's is their browser's (its locale)
            User.objects.filter(pk=user.pk).update(language=shown)
        # The other language at phone width: its longer words must not push a page sideways.
        context = browser.new_context(
            locale="pt-BR" if shown == "pt-br" else shown,
            viewport=PHONE if shown == language else None,
        )
        if user is not None:
            session = client.cookies["sessionid"].value
            context.add_cookies([{"name": "sessionid", "value": session, "url": live_url}])
        page = new_page(context)
        try:
            for url in urls:
                answer = page.goto(live_url + url)
                assert answer is not None and answer.status == 200, url
                step(page, f"{url} in {shown}")
                rendered.setdefault(url, {})[shown] = page.content()
                assert page.evaluate("document.documentElement.lang") == shown, url
                if shown == language and (overflow := page.evaluate(SIDEWAYS)) > 0:
                    sideways.append(f"{url} scrolls sideways {overflow}px at 390 px")
        except Exception:
            save_steps(page, f"{request.node.name}-{shown}")
            raise
        finally:
            context.close()
    problems = [
        f"{url}: {text}"
        for url, pages in rendered.items()
        for text in english_left(
            pages["en"], pages[language], language=language, region="page", data=data
        )
    ]
    assert not problems, f"English left over in {language}:\n" + "\n".join(problems)
    assert not sideways, "\n".join(sideways)
