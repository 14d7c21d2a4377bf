"""Every word a person reads is translatable, and every shipped catalogue is complete.

- Templates: text outside ``{% translate %}`` / ``{% blocktranslate %}`` (and the attributes people
  read: title, alt, placeholder, aria-label, hx-confirm…) fails, naming the file and the text.
- Catalogues: each app with translatable strings ships ``locale/<lang>/LC_MESSAGES/django.po`` for
  every language besides English. ``makemessages`` is re-run on a copy of the sources: a string in
  the code that the shipped catalogue lacks, an untranslated or fuzzy entry, or a ``.mo`` that is
  not the compiled ``.po`` fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parent.parent
LANGS = [code for code, _ in settings.LANGUAGES if code != "en"]
LOCALE_NAMES = {"pt-br": "pt_BR", "es": "es"}
# Our own apps (each keeps its catalogues in <app>/locale) and the project-wide sources, whose
# catalogue is locale/ at the top (settings.LOCALE_PATHS).
APPS = ["accounts", "analytics", "bounces", "channels", "reports", "sending", "staff"]
PROJECT_SOURCES = ["templates", "msc_admin"]

# Names that read the same in every language: products, protocols, formats.
SAME_IN_EVERY_LANGUAGE = {
    "Gmail", "Google", "Google Workspace", "Workspace", "Microsoft", "Exchange", "Outlook",
    "Office", "SendGrid", "SparkPost", "Mailgun", "Postmark", "Amazon", "SES", "ToutApp", "MSC",
    "SMTP", "IMAP", "EWS", "API", "Graph", "DKIM", "SPF", "DMARC", "MX", "DNS", "CSV", "TLS",
    "SSL", "STARTTLS", "OAuth", "XOAUTH2", "TOTP", "ID", "URL", "IP", "UTC", "msc", "admin",
    "OK", "Email", "Connection", "www", "https", "http", "com", "Django",
}  # fmt: skip
READABLE_ATTRIBUTES = {
    "title", "alt", "placeholder", "aria-label", "aria-description", "aria-roledescription",
    "aria-valuetext", "label", "hx-confirm", "hx-prompt", "data-confirm", "data-message",
}  # fmt: skip
SKIP = "\x00"
WORD = re.compile(r"[^\W\d_]{2,}")
NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|\b[\w-]+(?:\.[\w-]+)+\b|&\w+;")


def _words(text: str) -> list[str]:
    text = NOT_WORDS.sub(" ", text.replace(SKIP, " "))
    return [w for w in WORD.findall(text) if w not in SAME_IN_EVERY_LANGUAGE]


def _without_translated_parts(source: str) -> str:
    """The template with every tag, variable, comment and translated block replaced by SKIP."""
    pieces: list[str] = []
    skipping: list[str] = []
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents.strip() else ""
            if name in ("blocktranslate", "blocktrans", "comment", "verbatim"):
                skipping.append("end" + name)
            elif skipping and name == skipping[-1]:
                skipping.pop()
            pieces.append(SKIP)
        elif token.token_type == TokenType.TEXT and not skipping:
            pieces.append(token.contents)
        else:
            pieces.append(SKIP)
    return "".join(pieces)


class _ReadableText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._code = 0  # inside <script>/<style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._code += 1
        for name, value in attrs:
            if name in READABLE_ATTRIBUTES and value and _words(value):
                self.found.append(f'{name}="{value.replace(SKIP, "…")}"')

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._code:
            self._code -= 1

    def handle_data(self, data: str) -> None:
        if not self._code and _words(data):
            self.found.append(" ".join(data.replace(SKIP, "…").split()))


def untranslated_text(source: str, *, html: bool = True) -> list[str]:
    """What a person would read in this template that no translation covers."""
    text = _without_translated_parts(source)
    if not html:
        return [" ".join(text.replace(SKIP, "…").split())] if _words(text) else []
    parser = _ReadableText()
    parser.feed(text)
    parser.close()
    return parser.found


def _templates(area: str) -> list[Path]:
    base = ROOT / area / "templates" if area != "templates" else ROOT / "templates"
    return sorted(p for p in base.rglob("*") if p.suffix in (".html", ".txt"))


def test_the_checker_finds_untranslated_text() -> None:
    assert untranslated_text("<p>Hello</p>") == ["Hello"]
    assert untranslated_text('<a title="Open it" href="/x">{% translate "Go" %}</a>') == [
        'title="Open it"'
    ]
    assert (
        untranslated_text(
            "{% load i18n %}<p>{% blocktranslate %}Hi {{ n }}{% endblocktranslate %}</p>"
            '<button hx-confirm="{% translate \'Sure?\' %}">{% translate "Go" %}</button>'
            "<script>var text = 'Not read';</script>{# A comment #}<td>SMTP · 42 · a@b.test</td>"
        )
        == []
    )
    assert untranslated_text("Dear {{ name }},\nWelcome", html=False) == ["Dear …, Welcome"]


@pytest.mark.parametrize("area", [*APPS, "templates"])
def test_templates_hold_no_untranslatable_text(area: str) -> None:
    found = []
    for path in _templates(area):
        for text in untranslated_text(path.read_text(), html=path.suffix == ".html"):
            found.append(f"{path.relative_to(ROOT)}: {text}")
    assert not found, "Wrap in {% translate %} / {% blocktranslate %}:\n" + "\n".join(found)


def _catalogue_areas() -> list[tuple[str, Path, list[str]]]:
    """(name, locale dir, source dirs) for every catalogue the product ships."""
    areas = [(app, ROOT / app / "locale", [app]) for app in APPS]
    areas.append(("project", ROOT / "locale", PROJECT_SOURCES))
    return areas


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # Not the app folder first on sys.path: an app's selectors.py would shadow the standard
    # library's (which subprocess imports) when makemessages runs inside it.
    env["PYTHONSAFEPATH"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("area", "locale_dir", "sources"), _catalogue_areas(), ids=lambda v: v)
def test_catalogues_are_complete_and_compiled(
    area: str, locale_dir: Path, sources: list[str], tmp_path: Path
) -> None:
    if shutil.which("xgettext") is None:
        pytest.fail("GNU gettext is needed to check the catalogues (apt-get install gettext)")
    if not locale_dir.is_dir():
        pytest.fail(f"{area}: no catalogues in {locale_dir.relative_to(ROOT)}")
    # A copy of the sources beside a copy of the shipped catalogues; makemessages merges what
    # the code says into the copies, so anything new shows up as untranslated there.
    for source in sources:
        shutil.copytree(ROOT / source, tmp_path / source, ignore=shutil.ignore_patterns("locale"))
    shutil.copytree(locale_dir, tmp_path / "locale")
    work = tmp_path / sources[0] if area != "project" else tmp_path
    if area != "project":
        shutil.move(tmp_path / "locale", work / "locale")
    locales = [f"--locale={LOCALE_NAMES[lang]}" for lang in LANGS]
    made = _run(
        sys.executable, "-P", "-m", "django", "makemessages", *locales, "--no-location", cwd=work
    )
    assert made.returncode == 0, made.stderr
    problems = []
    for lang in LANGS:
        name = LOCALE_NAMES[lang]
        shipped = locale_dir / name / "LC_MESSAGES"
        merged = work / "locale" / name / "LC_MESSAGES" / "django.po"
        if not (shipped / "django.po").exists():
            problems.append(f"{area}: no {name} catalogue")
            continue
        for flag, what in (("--untranslated", "untranslated"), ("--only-fuzzy", "fuzzy")):
            out = _run("msgattrib", flag, "--no-obsolete", str(merged), cwd=tmp_path).stdout
            missing = [m for m in re.findall(r'^msgid "(.*)"$', out, re.M) if m]
            if missing:
                problems.append(f"{area} {name}: {what}: {missing[:20]} ({len(missing)} in all)")
        compiled = tmp_path / f"{name}.mo"
        fmt = _run("msgfmt", "--check", "-o", str(compiled), str(shipped / "django.po"), cwd=ROOT)
        assert fmt.returncode == 0, fmt.stderr
        mo = shipped / "django.mo"
        if not mo.exists() or mo.read_bytes() != compiled.read_bytes():
            problems.append(f"{area} {name}: django.mo is not the compiled django.po")
    assert not problems, "\n".join(problems)
