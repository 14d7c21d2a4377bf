"""The repository stands alone: the bounce corpus and the product brief live inside it, intact."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bounces import conftest
from tests.bounces.conftest import corpus

ROOT = Path(__file__).resolve().parents[2]


def test_the_vendored_corpus_is_byte_for_byte_what_was_copied() -> None:
    folder = corpus()
    listed = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    emails = {f"emails/{p.name}" for p in (folder / "emails").iterdir()}
    assert emails | {"LICENSE", "expected.json"} == set(listed)
    changed = [
        name
        for name, digest in listed.items()
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest
    ]
    assert not changed, f"changed since vendoring (line ends converted?): {changed[:5]}"
    # Some samples really have CRLF line ends: a checkout that converted them would fail above.
    assert sum(b"\r\n" in (folder / name).read_bytes() for name in emails) >= 40
    expected = json.loads((folder / "expected.json").read_text())
    assert {f"emails/{item['file']}" for item in expected} == emails
    assert "BSD 2-CLAUSE" in (folder / "LICENSE").read_text()


def test_a_missing_corpus_fails_the_tests_that_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conftest, "CORPUS", tmp_path / "gone")
    with pytest.raises(pytest.fail.Exception, match="the bounce corpus is missing"):
        corpus()


@pytest.mark.parametrize("where", ["repo root", "elsewhere"])
def test_the_quality_score_needs_no_arguments(where: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cwd = ROOT if where == "repo root" else tmp_path
    run = subprocess.run(
        [sys.executable, "-m", "bounceparse.quality"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("files 339, expected recipients 335"), run.stdout


def test_a_corpus_folder_that_is_not_there_is_named(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bounceparse.quality", str(tmp_path / "nowhere")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert f"no corpus at {tmp_path / 'nowhere'}" in run.stderr


# Built from parts so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared|/work/" + "shared")
SKIP_DIRS = {".git", ".venv", "var", "node_modules", "test-artifacts", "__pycache__"}
TEXT = {".py", ".md", ".sh", ".txt", ".toml", ".cfg", ".ini", ".html", ".js", ".css", ".json"}


def test_nothing_in_the_repository_points_outside_it() -> None:
    offenders = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith("_cache")]
        here = Path(dirpath)
        for name in filenames:
            path = here / name
            scripts = here.name in ("bin", ".ci")
            if path.suffix not in TEXT and not scripts:
                continue
            if OUTSIDE.search(path.read_text(errors="replace")):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
    brief = (ROOT / "docs" / "product.md").read_text()
    assert "Legacy MSC servers" in brief and "Throttling" in brief
    assert "docs/product.md" in (ROOT / "README.md").read_text()
