"""Screenshots as documentation: the main pages, as each demo persona, at 1280 and 390 px.

    python -m tests.browser.screenshots [--out docs/screenshots] [--only admin,rep]

It runs the embedded demo in a throwaway folder (SQLite, ``seed_demo``'s data, tasks
in-process, two-factor off as in ``bin/run``), signs in as each demo login, and saves one PNG
per persona, page and width: ``<persona>-<page>-<width>.png``, the whole page. Chromium is
``MSC_CHROMIUM`` (default ``/usr/bin/chromium``); Playwright comes with the dev requirements
(``bin/test`` installs them). ``capture`` does the browser part against any running server, so a
test can run it against its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MSC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
WIDTHS = {1280: 900, 390: 844}  # width: height of the window (the picture is the whole page)
PASSWORD = "demo-password-123"


@dataclass(frozen=True)
class Persona:
    name: str
    email: str
    pages: tuple[tuple[str, str], ...]  # (slug, path)


PERSONAS = (
    Persona(
        "admin",
        "admin@acme.test",
        (
            ("home", "/"),
            ("channels", "/channels/"),
            ("team-settings", "/channels/team/"),
            ("outbox", "/outbox/"),
            ("analytics", "/analytics/"),
            ("campaign-analytics", "/analytics/campaigns/"),
            ("reasons-and-domains", "/analytics/breakdown/"),
            ("live-feed", "/analytics/live/"),
            ("suppressions", "/suppressions/"),
        ),
    ),
    Persona(
        "rep",
        "rep@acme.test",
        (("home", "/"), ("outbox", "/outbox/"), ("analytics", "/analytics/")),
    ),
    Persona("legacy-admin", "admin@globex.test", (("channels", "/channels/"),)),
    Persona("staff", "staff@msc.test", (("console", "/staff/"),)),
)


def capture(base_url: str, personas: tuple[Persona, ...], out: Path) -> list[Path]:
    """Sign in as each persona and save its pages at each width; returns the files written."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for persona in personas:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.set_default_timeout(30_000)
                page.goto(f"{base_url}/accounts/login/")
                page.fill("input[name=login]", persona.email)
                page.fill("input[name=password]", PASSWORD)
                page.click("form button[type=submit]")
                page.wait_for_load_state("networkidle")
                if "/accounts/login/" in page.url:
                    raise RuntimeError(f"could not sign in as {persona.email}")
                for slug, path in persona.pages:
                    for width, height in WIDTHS.items():
                        page.set_viewport_size({"width": width, "height": height})
                        page.goto(f"{base_url}{path}")
                        page.wait_for_load_state("networkidle")
                        target = out / f"{persona.name}-{slug}-{width}.png"
                        page.screenshot(path=str(target), full_page=True)
                        written.append(target)
                context.close()
        finally:
            browser.close()
    return written


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def demo_server() -> Iterator[str]:
    """The embedded demo (SQLite in a temporary folder, demo data) on a free port."""
    with tempfile.TemporaryDirectory(prefix="msc-screenshots-") as folder:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MSC_SECRET_KEYS"}
        }
        env |= {
            "DATABASE_URL": f"sqlite:///{folder}/demo.sqlite3",
            "DEBUG": "true",
            "MSC_REQUIRE_MFA": "false",
            "MSC_VAR_DIR": folder,
            "MSC_DNS_TIMEOUT": "1",
        }
        python = sys.executable
        for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
            subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True)
        port = _free_port()
        server = subprocess.Popen(
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(f"{url}/health/", timeout=2),  # noqa: S310 - loopback
                ):
                    break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the demo server did not start")
                time.sleep(0.2)  # polling the server's health page until it answers
            yield url
        finally:
            server.terminate()
            server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", default="", help="persona names, comma-separated")
    args = parser.parse_args()
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    personas = tuple(p for p in PERSONAS if not chosen or p.name in chosen)
    with demo_server() as url:
        written = capture(url, personas, args.out)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
