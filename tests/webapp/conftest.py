"""Fixtures for the web app tests: a live server on wall-clock time and headless Chromium.

The browser signs with the real time, so this server runs on the wall clock rather than the
session's FakeClock (other tests move that one). Chromium is Debian's package at
/usr/bin/chromium (scripts/install_browser.sh); without it every test here is skipped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.helpers import Actor, FakeClock, live_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"

SKIP_REASON = (
    "web app browser tests need Debian's chromium at /usr/bin/chromium "
    "(run scripts/install_browser.sh)"
)
HAVE_BROWSER = CHROMIUM.exists()
needs_browser = pytest.mark.skipif(not HAVE_BROWSER, reason=SKIP_REASON)


class WallClock(FakeClock):
    """The real time, read on every call."""

    def __call__(self) -> int:
        return int(time.time())


@pytest.fixture(scope="module")
async def web_url(database_url: str) -> AsyncIterator[str]:
    async with live_server(database_url, WallClock()) as base:
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_BROWSER:
        pytest.skip(SKIP_REASON)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go (gitignored)."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A phone-sized browser context. CSP is bypassed only so axe-core can be injected."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, bypass_csp=True, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def shop(web_url: str) -> AsyncIterator[Actor]:
    """A business speaking the HTTP API (the SDK-like test actor)."""
    async with httpx.AsyncClient(timeout=30) as http:
        actor = Actor(http=http, clock=WallClock(), base_url=web_url)
        await actor.register("business", "Roastery")
        yield actor


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => { const r = await axe.run(document);"
        " return {violations: r.violations, passes: r.passes.length}; }"
    )
    assert result["passes"] > 10, "axe-core did not check the page"
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
