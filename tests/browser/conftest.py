"""Real headless Chromium (Debian's) driven by Playwright against a live server thread.

The server is Django's LiveServerThread with our whole middleware stack, whitenoise included:
static files are the collected, hashed ones, exactly as in production.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around
# it are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("MSC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: while Playwright runs, its asyncio loop makes asgiref hand the
    # ORM context-local connections, and tests outside this package must not inherit that.
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; bin/test installs Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (bin/test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", static_handler=lambda app: app, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


def step(page, label: str) -> None:
    """Mark a step of a journey: its screenshot is kept, and written out if the test fails."""
    page.steps.append((label, page.screenshot(full_page=True)))


def save_steps(page, name: str) -> None:
    """test-artifacts/<test name>/: one screenshot per step reached, then the page as it was
    when the test failed."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
    folder.mkdir(parents=True, exist_ok=True)
    for number, (label, png) in enumerate(page.steps, 1):
        slug = re.sub(r"[^\w-]+", "-", label.lower()).strip("-")
        (folder / f"{number:02d}-{slug}.png").write_bytes(png)
    page.screenshot(path=str(folder / f"{len(page.steps) + 1:02d}-at-failure.png"), full_page=True)


def new_page(context):
    page = context.new_page()
    page.set_default_timeout(15000)
    page.steps = []
    page.console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return page


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh browser context per test; console errors (CSP violations among them) collected.

    On failure the screenshots of every ``step`` and of the failing page go to
    test-artifacts/<test name>/.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = new_page(context)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        save_steps(page, request.node.name)
    context.close()


@pytest.fixture
def open_page(browser, request: pytest.FixtureRequest):
    """For journeys with several people: ``open_page(viewport, label)`` gives each their own
    browser context; on failure each one's step screenshots go to test-artifacts/."""
    opened: list[tuple[object, object]] = []

    def open_one(viewport: dict[str, int] | None = None, label: str = ""):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        page = new_page(context)
        page.label = label or f"page-{len(opened) + 1}"
        opened.append((context, page))
        return page

    yield open_one
    failed = getattr(request.node, "rep_call", None)
    for context, page in opened:
        if failed is not None and failed.failed:
            save_steps(page, f"{request.node.name}-{page.label}")
        context.close()


@pytest.fixture(autouse=True)
def _close_connections_opened_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop running in this thread, so asgiref gives the
    ORM calls a test makes here their own connection objects, which pytest-django does not see.
    Close them, or PostgreSQL refuses to drop the test database at the end of the run."""
    yield
    from django.db import connections

    connections.close_all()
