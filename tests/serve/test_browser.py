"""The draw-a-digit page in a real headless Chromium: draw a stroke with the mouse, see the prediction.

Skipped only where Chromium (or Playwright) is missing and the environment variable CI is unset;
under CI a missing browser is a failure, so the page is never left untested there.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


@pytest.fixture
def sync_playwright():
    """Playwright's entry point, or a skip (a failure under CI) naming what is missing."""
    problem = None if CHROMIUM.is_file() else f"{CHROMIUM} is not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "Playwright for Python is not installed (pip install 'cnnlab[dev]')"
    if problem is not None:
        if "CI" in os.environ:  # set at all: a CI run, where the page must be tested
            pytest.fail(f"CI is set, so the browser test must run: {problem}")
        pytest.skip(problem)
    return sync_playwright


@contextmanager
def serving(app):
    """``app`` served by uvicorn in a thread, on a free port of 127.0.0.1: its URL; stopped afterwards."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # the port is ours from here on: no race with other processes
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def server_url(trained_run):
    """`cnnlab serve` for the shared model."""
    from cnnlab.serve.app import create_app

    with serving(create_app(trained_run)) as url:
        yield url


def test_drawing_a_one_shows_the_prediction_bars_and_feature_maps(sync_playwright, server_url, tmp_path):
    from playwright.sync_api import expect  # locator waits: they work under the page's CSP, unlike eval'd ones

    outside = []  # any request that leaves the server: the page must work offline
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: request.url.startswith(server_url) or outside.append(request.url))
            page.goto(server_url + "/")
            expect(page.locator("#bars li")).to_have_count(10)  # /api/model has answered
            assert page.is_visible("#hint")
            expect(page.locator("#pad")).to_have_css("touch-action", "none")  # drawing with a finger never scrolls

            box = page.locator("#pad").bounding_box()
            x = box["x"] + box["width"] * 0.5
            top, bottom = box["y"] + box["height"] * 0.2, box["y"] + box["height"] * 0.8
            page.mouse.move(x + 8, top)
            page.mouse.down()
            page.mouse.move(x - 8, bottom, steps=25)  # a vertical stroke, slightly slanted: a "1"
            page.mouse.up()

            expect(page.locator("#label")).not_to_have_text("?", timeout=15_000)
            assert page.is_hidden("#hint")
            assert page.text_content("#label") == "1"
            assert page.text_content("#bars li.top .name") == "1"
            widths = page.eval_on_selector_all("#bars .fill", "fills => fills.map(f => parseFloat(f.style.width))")
            assert len(widths) == 10 and max(widths) == widths[1] and sum(widths) == pytest.approx(100, abs=1)
            assert page.locator("#maps img").count() == 8
            seen_ink = page.evaluate("""() => {
                const pixels = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;
                return pixels.filter((value, index) => index % 4 === 0 && value > 0).length; }""")
            assert seen_ink > 20  # the 28×28 the model saw is drawn

            screenshot = tmp_path / "page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            page.click("#clear")
            assert page.is_visible("#hint") and page.text_content("#label") == "?"
        finally:
            browser.close()
    assert outside == []
