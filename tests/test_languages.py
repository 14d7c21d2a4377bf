"""No English left over: a person who reads Portuguese or Spanish sees no English UI text.

Each page of the every-page walk (``tests/browser/test_every_page._pages``: every route without
arguments and every object route of the security suite, as rep, admin, staff and a signed-out
visitor) is fetched twice through the client, once in English and once in the language under
test. A word the person reads (text, and the attributes people read: title, aria-label,
placeholder, confirmations…) that is on both renderings is English left over, unless it is
data (names, addresses, subjects, … of the rows in the database: ``data_words``), a name that
reads the same in every language (``tests.test_translations.SAME_IN_EVERY_LANGUAGE``), a word
spelled the same in English and that language (``SHARED``), or an element marked as written in
another language (``lang="en"``: the language choice names each language in itself).

What is checked: the whole page for the views in ``WHOLE_PAGE`` (by module), and the layout
(everything outside ``<main>``: navigation, user menu, footer) on every other page.
To widen it once every app is translated: add the apps' modules to ``WHOLE_PAGE`` (or make it
``("",)`` for every page), and empty ``NOT_YET`` and ``LAYOUT_ONLY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import responses
from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import models
from django.test import Client, override_settings
from django.urls import resolve, reverse
from django.utils import timezone

import bounceparse.labels
from accounts.models import User
from bounces import services as bounce_services
from bounces import spikes
from channels import services as channel_services
from channels.kinds import SmtpConfig
from channels.models import Channel, MscServer
from channels.oauth import OAuthRevoked, fresh_access_token
from channels.transports import BACKOFF, SendFailure
from sending import pipeline
from staff import services as staff_services
from tests.bounces.conftest import arf_for, mark_sent
from tests.browser.test_every_page import _pages
from tests.channels.test_oauth import GOOGLE_TOKEN
from tests.mailservers import free_port
from tests.security.conftest import World, fresh_client, world  # noqa: F401
from tests.sending.conftest import queue_message
from tests.test_translations import NOT_WORDS, READABLE_ATTRIBUTES, SAME_IN_EVERY_LANGUAGE

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served

LANGUAGES = ["pt-br", "es"]
# Every page is checked whole (every app is translated); a view module listed here would be
# checked as layout only.
WHOLE_PAGE = ("",)
LAYOUT_ONLY: set[str] = set()
# Text a page may leave in English for now (patterns). Empty: the sentences the product stores
# and shows later (a send's status, a suppression's detail, feed entries, a channel's status
# message and back-off reason, a complaint, the audit logs) are stored as message ids and values
# (``msc_admin.stored``) and read in each reader's language; ``_stored_sentences`` writes them
# through the code that writes them in production, so that one stored in English again fails.
NOT_YET: list[re.Pattern[str]] = []
# Words spelled the same in English and Portuguese or Spanish, technical names included.
SAME = {
    "total",
    "spam",
    "plugins",
    "tokens",
    "ok",
    "host",
    "plain",
    "login",
    "cram-md",
    "qr",
    "urls",
}
# Words Portuguese and Spanish product copy keeps in English (the trade's loanwords), names
# of the demo's sample contact, and the reason codes shown beside their words.
SAME |= {
    "online",
    "data",
    "hybrid",
    "webhook",
    "webhooks",
    "plugin",
    "web",
    "relay",
    "autodiscover",
    "marketing",
    "marketo",
    "scripts",
    "status",
    "mb",
    "post",
    "pat",
    "example",
    "inc",
    "greylisting",
    "domainkey",
    "txt",
    "yahoo",
    "selector",
    # Spelled the same as an English word: pt "use", "via", "for"; es "plan".
    "use",
    "via",
    "for",
    "plan",
    # CSV column names a file must have, as the import reads them.
    "first_name",
    "last_name",
    "company",
    "note",
    "first",
    "last",
    "name",
} | set(bounceparse.labels.LABELS)
SHARED = {
    "pt-br": SAME | {"no", "do", "as", "me", "se", "link", "site", "volume", "byte"}
    | {"jan", "mar", "jun", "jul", "nov"},
    "es": SAME | {"no", "me", "se", "personal", "invite", "byte"}
    | {"feb", "mar", "may", "jun", "jul", "sep", "oct", "nov"},
}  # fmt: skip
# Text fields whose values are people's data (names, addresses, subjects, bodies, hosts…).
DATA_FIELD = re.compile(
    r"name|email|address|subject|body|slug|label|title|host|domain|username|company|"
    r"signature|filename|recipient|sender|diagnostic|reason_text|original"
)
# Whole words only: letters glued to digits are a code or a secret (a TOTP key "JBSW Y3DP AO7Q"
# held "ao", which matched Portuguese "ao vivo" one run in many), not words of either language.
# (Atomic, so that "CRAM-MD5" gives no word at all rather than "CRAM".)
WORD = re.compile(r"(?<![\w])(?>[^\W\d_]+(?:['\u2019-][^\W\d_]+)*)(?![\d_])")
READ = READABLE_ATTRIBUTES | {"data-saved", "data-refused"}


@dataclass(frozen=True)
class Segment:
    text: str
    in_main: bool


class _Visible(HTMLParser):
    """What a person reads on a page: text and readable attributes, each marked as inside
    ``<main>`` or not; scripts, styles and elements in another declared language left out."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}

    def __init__(self, language: str) -> None:
        super().__init__(convert_charrefs=True)
        self.language = language
        self.found: list[Segment] = []
        self._main = 0
        self._code = 0
        self._foreign: list[str] = []  # open elements whose lang is another language

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("main", "title"):  # the page's title is the page's, not the layout's
            self._main += 1
        if tag in ("script", "style", "code", "pre", "kbd"):  # code, commands, codes
            self._code += 1
        lang = (named.get("lang") or "").lower()
        if tag not in self.VOID and (self._foreign or (lang and lang != self.language)):
            self._foreign.append(tag)
        if self._foreign:
            return
        for name, value in attrs:
            readable = name in READ or (
                name == "value" and tag == "input" and named.get("type") in ("submit", "button")
            )
            if readable and value:
                self.found.append(Segment(value, self._main > 0))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("main", "title") and self._main:
            self._main -= 1
        if tag in ("script", "style", "code", "pre", "kbd") and self._code:
            self._code -= 1
        if self._foreign and self._foreign[-1] == tag:
            self._foreign.pop()

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._code and not self._foreign:
            self.found.append(Segment(text, self._main > 0))


def visible(page: str, language: str) -> list[Segment]:
    parser = _Visible(language)
    parser.feed(page)
    parser.close()
    return parser.found


MERGE_FIELD = re.compile(r"\{\{[^}]*\}\}")  # {{first_name|there}}: what a person types


def words(text: str) -> set[str]:
    text = NOT_WORDS.sub(" ", MERGE_FIELD.sub(" ", text))
    return {w.lower() for w in WORD.findall(text) if len(w) > 1}


def data_words() -> set[str]:
    """Every word of the rows' text fields that hold people's data (``DATA_FIELD``)."""
    found: set[str] = set()
    for model in apps.get_models():
        fields = [
            f.name
            for f in model._meta.get_fields()
            if isinstance(f, models.CharField | models.TextField) and DATA_FIELD.search(f.name)
        ]
        if not fields:
            continue
        for row in model.objects.values_list(*fields):
            for value in row:
                if value:
                    found |= words(str(value))
    return found


def _checked(url: str) -> str:
    """ "page" (the whole page) or "layout" (outside ``<main>``)."""
    match = resolve(url)
    whole = match.func.__module__.startswith(WHOLE_PAGE) and match.url_name not in LAYOUT_ONLY
    return "page" if whole else "layout"


def english_left(
    english: str, translated: str, *, language: str, region: str, data: set[str]
) -> list[str]:
    """The segments of ``translated`` holding words that the English rendering has too and
    that are neither ``data`` nor the same in both languages, with those words."""
    allowed = {w.lower() for w in SAME_IN_EVERY_LANGUAGE} | SHARED[language] | data

    def checked(segments: list[Segment]) -> list[Segment]:
        return [s for s in segments if region == "page" or not s.in_main]

    in_english = set().union(*(words(s.text) for s in checked(visible(english, "en"))))
    found = []
    for segment in checked(visible(translated, language)):
        text = segment.text
        for waiting in NOT_YET:
            text = waiting.sub(" ", text)
        left = sorted(
            word
            for word in words(text) & in_english
            if word not in allowed and not set(word.split("-")) <= allowed
        )
        if left:
            found.append(f"{segment.text!r} ({', '.join(left)})")
    return list(dict.fromkeys(found))


@pytest.fixture
def data(world: World, staff_user: User) -> set[str]:  # noqa: F811
    """The world of the every-page walk, an MSC server for the staff console, the sentences the
    product stores and shows later (written by the code that writes them in production), and
    their data."""
    server = MscServer.objects.create(name="msc-relay-1", host="127.0.0.1", port=free_port())
    _stored_sentences(world, staff_user, server)
    return data_words() | words(SERVER_SAID)  # the server's words are shown as it said them


SERVER_SAID = "421 4.7.0 Try again later"


def _stored_sentences(
    world: World,  # noqa: F811
    staff: User,
    server: MscServer,
) -> None:
    """What people read later, stored as the product stores it: the rep's Gmail mailbox needing
    attention (Google revoked the grant), the team channel backed off by its server, a bounce
    spike's pause, a complaint, and staff audit entries (a failed server check, a Django admin
    change)."""
    # Google refuses the refresh: the mailbox needs attention (status message, feed, audit).
    # (Configured only for this: a server with a Google client has more pages to walk.)
    google_app = {"client_id": "test.apps.googleusercontent.com", "secret": "s", "key": ""}
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["google"] = {**providers["google"], "APPS": [google_app]}
    Channel.objects.filter(pk=world.gmail.pk).update(token_expires_at=timezone.now())
    with override_settings(SOCIALACCOUNT_PROVIDERS=providers), responses.RequestsMock() as google:
        google.post(GOOGLE_TOKEN, status=400, json={"error": "invalid_grant"})
        with pytest.raises(OAuthRevoked):
            fresh_access_token(world.gmail.pk)
    # The team channel's server asks it to slow down (back-off reason, the queue's detail).
    team = Channel.objects.get(pk=world.team_channel.pk)
    pipeline._push_back(
        pipeline._Attempt(world.queued, token=""),
        team,
        SendFailure(BACKOFF, SERVER_SAID, code=421, retry_after=3600),
        timezone.now(),
    )
    # A second team channel paused by a bounce spike (status message, held mail, feed, audit).
    spiked = channel_services.channel_save_smtp(
        tenant=world.tenant,
        actor=world.admin,
        owner=world.admin,
        config=SmtpConfig(
            host="127.0.0.1", port=free_port(), username="a", sending_domain="a.test"
        ),
        password="p",
        use_for_all_members=False,
    )
    spikes._pause(spiked, timezone.now() - timedelta(minutes=30), timezone.now(), 20, 6, 10)
    # A recipient marks an email as spam (the complaint, its suppression, the feed).
    complained = mark_sent(
        queue_message(world.tenant, world.rep, world.identity, to="lee@prospect.test")
    )
    bounce_services.ingest(
        tenant=world.tenant, raw=arf_for(complained, recipient="lee@prospect.test")
    )
    # Staff: a check of a pool server that does not answer, and a change in the Django admin.
    staff_services.server_check(actor=staff, server=server)
    LogEntry.objects.log_actions(
        staff.pk,
        [world.tenant],
        CHANGE,
        change_message=[{"changed": {"fields": ["Name"]}}],
        single_object=True,
    )


def _walk(
    client: Client,
    urls: list[str],
    set_language: Callable[[str], None],
    language: str,
    data: set[str],
) -> list[str]:
    problems = []
    for url in urls:
        set_language("en")
        english = client.get(url, headers={"accept-language": "en"})
        set_language(language)
        translated = client.get(url, headers={"accept-language": language})
        assert english.status_code == translated.status_code == 200, url
        left = english_left(
            english.content.decode(),
            translated.content.decode(),
            language=language,
            region=_checked(url),
            data=data,
        )
        problems += [f"{url}: {text}" for text in left]
    return problems


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("persona", ["visitor", "rep", "admin", "staff"])
def test_no_english_is_left_for_a_person_reading_another_language(
    world: World,  # noqa: F811
    data: set[str],
    staff_user: User,
    persona: str,
    language: str,
) -> None:
    user = {"rep": world.rep, "admin": world.admin, "staff": staff_user}.get(persona)
    client = fresh_client(user) if user else Client()
    urls = _pages(client, world, staff=persona == "staff", persona=persona)
    if persona == "staff":
        server = MscServer.objects.get()
        urls += [
            reverse("staff:tenant", args=[world.tenant.pk]),
            reverse("staff:server_edit", args=[server.pk]),
        ]

    def set_language(code: str) -> None:
        if user is not None:  # their own choice (a visitor's is their browser's)
            User.objects.filter(pk=user.pk).update(language=code)

    problems = _walk(client, urls, set_language, language, data)
    assert len(urls) >= {"visitor": 3, "staff": 7}.get(persona, 15), urls
    assert not problems, f"English left over in {language}:\n" + "\n".join(problems)


def test_the_detector_finds_english_and_lets_data_and_other_languages_be() -> None:
    english = (
        '<nav><a href="/">Outbox</a></nav>'
        '<main><p title="Hello there">Acme · Welcome back</p></main>'
    )
    translated = (
        '<nav><a href="/">Caixa de saída</a></nav>'
        '<main><p title="Hello there">Acme · Boas-vindas back</p>'
        '<option lang="en">English</option><option lang="pt-br">Português</option></main>'
    )
    found = english_left(english, translated, language="pt-br", region="page", data={"acme"})
    assert found == ["'Hello there' (hello, there)", "'Acme · Boas-vindas back' (back)"]
    assert english_left(english, translated, language="pt-br", region="layout", data=set()) == []
    assert english_left(english, english, language="pt-br", region="layout", data=set()) == [
        "'Outbox' (outbox)"
    ]
