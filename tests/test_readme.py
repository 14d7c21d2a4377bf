"""The README's Status paragraph says what is true, and its links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors() -> set[str]:
    return {slug(line.lstrip("#")) for line in README.splitlines() if line.startswith("#")}


def status() -> str:
    start = README.index("\nStatus:")
    return README[start : README.index("\n\n", start + 1)]


def test_the_slug_is_githubs() -> None:
    assert slug(" What the suite proves (the release gate)") == (
        "what-the-suite-proves-the-release-gate"
    )


def test_the_status_paragraph_points_at_the_release_gate_that_exists() -> None:
    text = status()
    assert "follows" not in text  # it did once, after the gate had been written
    targets = LINK.findall(text)
    assert targets == ["#what-the-suite-proves-the-release-gate"]
    assert targets[0][1:] in anchors()
    assert len(text.split()) < 80, "keep the Status paragraph short"


def test_every_link_in_the_readme_leads_somewhere() -> None:
    broken = []
    for target in LINK.findall(README):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            if target[1:] not in anchors():
                broken.append(target)
        elif not (ROOT / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"README links to nothing: {broken}"
