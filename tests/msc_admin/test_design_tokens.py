"""The stylesheet's colour tokens: every text colour on the background it is used on reads at
4.5:1 or better (WCAG AA for body text).

Two sources of pairs: every rule in app.css that sets both ``color`` and a background (a badge,
a button, a tab count, a table header...), and the pairs a colour inherits its background from
(ink on a panel, muted text on the page, links, the navigation on the top bar), listed below."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "static" / "css" / "app.css"
AA = 4.5

# (text, background) that meet without one rule naming both: the background comes from a parent.
INHERITED_PAIRS = [
    ("--ink", "--panel"),  # cards, tables, forms
    ("--ink", "--bg"),  # the page
    ("--ink", "--subtle"),  # muted cards, raw mail
    ("--ink", "--ok-bg"),  # success flash, results
    ("--ink", "--warn-bg"),  # callouts, the view-as banner
    ("--ink", "--bad-bg"),  # error callouts
    ("--ink", "--info-bg"),  # info flash
    ("--muted", "--panel"),  # help text, captions, chart labels in a card
    ("--muted", "--bg"),  # lead paragraphs, the footer
    ("--muted", "--subtle"),  # table headers
    ("--muted", "--warn-bg"),  # the view-as note
    ("--brand", "--panel"),  # links and secondary buttons
    ("--brand", "--bg"),  # links on the page
    ("--brand", "--info-bg"),  # links in an info flash
    ("--brand", "--warn-bg"),  # links in a callout
    ("--brand", "--bad-bg"),  # links in an error callout
    ("--bad", "--panel"),  # form errors, trend "worse", danger buttons
    ("--ok", "--panel"),  # trend "better"
    ("--bar-ink", "--bar-bg"),  # navigation links, "Sign out"
    ("--bar-text", "--bar-bg"),  # the top bar's own text
    ("--bar-muted", "--bar-bg"),  # who is signed in
    ("--bar-strong", "--bar-bg"),  # the brand
    ("--bar-accent", "--bar-bg"),  # the brand mark
]


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _tokens(css: str) -> dict[str, str]:
    root = re.search(r":root\s*{(.*?)}", css, re.S)
    assert root, "app.css has no :root block"
    return dict(re.findall(r"(--[\w-]+)\s*:\s*(#[0-9a-fA-F]{3,6})\b", root.group(1)))


def _resolve(value: str, tokens: dict[str, str]) -> str | None:
    value = value.strip()
    if match := re.fullmatch(r"var\((--[\w-]+)(?:,[^)]*)?\)", value):
        return tokens.get(match.group(1))
    if re.fullmatch(r"#[0-9a-fA-F]{3,6}", value):
        return value
    return None  # none, transparent, inherit, a gradient: not a solid background


def _rules_with_text_on_background(css: str, tokens: dict[str, str]) -> list[tuple[str, str, str]]:
    """(selector, text colour, background colour) for each rule that sets both."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    found = []
    for selector, body in re.findall(r"([^{}]+){([^{}]*)}", css):
        declarations = dict(
            (name.strip(), value.strip())
            for name, value in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body)
        )
        background = declarations.get("background-color") or declarations.get("background")
        if "color" not in declarations or not background:
            continue
        text, back = _resolve(declarations["color"], tokens), _resolve(background, tokens)
        if text and back:
            found.append((" ".join(selector.split()), text, back))
    return found


def test_the_checker_computes_wcag_contrast() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#fff", "#fff") == pytest.approx(1.0)


def test_the_rules_that_set_text_and_background_are_found() -> None:
    css = CSS.read_text()
    selectors = {selector for selector, _, _ in _rules_with_text_on_background(css, _tokens(css))}
    # Guards the parser: if it stopped finding these, the next test would pass on nothing.
    assert {".badge", ".badge.ok", ".badge.warn", ".badge.bad", "th"} <= selectors
    assert any("button" in selector for selector in selectors)


def test_every_text_colour_reads_on_its_background() -> None:
    css = CSS.read_text()
    tokens = _tokens(css)
    failures = []
    for text, background in INHERITED_PAIRS:
        assert text in tokens and background in tokens, f"{text} or {background} is not a token"
        ratio = contrast(tokens[text], tokens[background])
        if ratio < AA:
            failures.append(f"{text} on {background}: {ratio:.2f}:1")
    for selector, text, background in _rules_with_text_on_background(css, tokens):
        ratio = contrast(text, background)
        if ratio < AA:
            failures.append(f"{selector} ({text} on {background}): {ratio:.2f}:1")
    assert not failures, "below 4.5:1:\n" + "\n".join(failures)
