"""One real-browser test: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright
loads the launched app, runs a steer request and finds two audio players with audio.

Set TADA_SCREENSHOT=path.png to keep a screenshot of the page after the request. Without a browser
the test is skipped, unless TADA_REQUIRE_BROWSER=1 (CI sets it), where a missing browser fails it.
"""

import math
import os
import re
import shutil
import socket
import time

import pytest

from tada_app import AppConfig, Handlers, build_app, launch  # noqa: E402

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")

CHROMIUM = os.environ.get("TADA_CHROMIUM", "/usr/bin/chromium")
# as root, on a machine with no network: no sandbox, and none of Chromium's background connections
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app("tada-organism", Handlers(AppConfig.from_env({})))
    launch(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def _require_browser() -> None:
    if shutil.which(CHROMIUM):
        return
    message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set TADA_CHROMIUM)"
    if os.environ.get("TADA_REQUIRE_BROWSER") == "1":
        pytest.fail(message + "; TADA_REQUIRE_BROWSER=1 asks for the browser test to run")
    pytest.skip(message)


@pytest.fixture
def page(url):
    """A fresh page of the launched app in headless Chromium (skipped, or failed under TADA_REQUIRE_BROWSER=1,
    without a browser)."""
    _require_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(url, wait_until="networkidle")
            yield page
        finally:
            browser.close()


def wait_for_text(page, box, text: str, seconds: float, what: str) -> None:
    """Poll a text box's value (what a person reads there) until it contains ``text``; fail after ``seconds``."""
    start = time.perf_counter()
    while text not in box.input_value():
        assert time.perf_counter() - start < seconds, f"{what} after {seconds:g} s: {box.input_value()!r}"
        page.wait_for_timeout(100)


def test_browser_steer_shows_two_audio_players(page):
    assert page.locator("audio").evaluate_all("els => els.filter(a => a.src).length") == 0  # none yet
    page.get_by_label("duration (s, 0.5 to 30)").fill("2")
    page.get_by_label("steps").fill("10")
    page.get_by_role("button", name="Steer", exact=True).click()
    start = time.perf_counter()
    # both players of the Steer tab get audio once the request returns (gradio's waveform
    # players keep an <audio> element with a blob: source, inside a shadow root, which
    # Playwright's locators pierce and document.querySelectorAll does not)
    def sources():
        return page.locator("audio").evaluate_all("els => els.filter(a => a.src).map(a => a.src)")

    while len(sources()) < 2:
        assert time.perf_counter() - start < 120, "no two audio players with audio after 120 s"
        page.wait_for_timeout(100)
    elapsed = time.perf_counter() - start
    players = sources()
    assert len(players) == 2 and len(set(players)) == 2
    for src in players:  # each holds a real WAV file, not an empty placeholder
        head = page.evaluate("""async src => {
            const b = new Uint8Array(await (await fetch(src)).arrayBuffer());
            return [String.fromCharCode(...b.slice(0, 4)), b.length]; }""", src)
        assert head[0] == "RIFF" and head[1] > 16000
    # the caption is a read-only textarea: what a person reads there is its value, not a text node
    caption = page.get_by_label("what was done", exact=True)
    wait_for_text(page, caption, "(original) ->", 120, "no steering caption")
    numbers = re.search(r"([-+\d.e]+) \(original\) -> ([-+\d.e]+) \(steered\)", caption.input_value())
    assert numbers and all(math.isfinite(float(x)) for x in numbers.groups()), caption.input_value()
    assert page.locator("img[src]").count() >= 2  # the two spectrograms
    if os.environ.get("TADA_SCREENSHOT"):
        page.screenshot(path=os.environ["TADA_SCREENSHOT"], full_page=True)
    print(f"steer round trip in the browser: {elapsed:.2f} s")


def test_browser_localization_stop_says_so_and_the_impact_plot_renders(page):
    """The Localization tab as a person uses it: the committed impact shows as a table and a hoverable plot;
    Compute starts the sweep with one progress bar; Stop answers with its message in the status line."""
    page.get_by_role("tab", name="Localization").click()
    status = page.get_by_label("result", exact=True)
    wait_for_text(page, status, "functional layers", 60, "no committed localization shown")
    plot = page.locator(".vega-embed")            # gradio's native plots render with Vega
    plot.first.wait_for(timeout=30_000)
    assert plot.first.locator("canvas, svg").count() > 0
    page.get_by_role("button", name="Compute for this concept").click()
    wait_for_text(page, status, "patching sweep", 120, "the sweep did not start")
    assert page.locator(".progress-bar").count() <= 1          # one progress bar for one job
    page.get_by_role("button", name="Stop", exact=True).click()
    wait_for_text(page, status, "Stopped.", 120, "Stop said nothing")
    if os.environ.get("TADA_SCREENSHOT"):
        page.screenshot(path=os.environ["TADA_SCREENSHOT"].replace(".png", "-localization.png"),
                        full_page=True)


def test_browser_switching_to_musicgen_shows_no_error(page):
    """Choosing musicgen-organism (no SAEs, DiffMean vectors) fills the page for it without an error toast."""
    page.get_by_label("model", exact=True).click()
    page.get_by_role("option", name="musicgen-organism").click()
    vector = page.get_by_label("vector, and what `tada verify` found it does on fresh seeds", exact=True)
    wait_for_text(page, vector, "DIFFMEAN", 120, "the page did not switch")
    page.wait_for_timeout(1500)                   # let the chained updates (SAE tab, layers) finish
    toasts = page.locator(".toast-body").all_inner_texts()
    assert not toasts, toasts


def test_browser_mix_sends_the_sliders_it_shows(page):
    """The Mix tab as a person uses it: one slider moved, Mix: the caption names that vector at that alpha, so the
    page's hidden names and gathered alphas reach /mix as the sliders show them."""
    page.get_by_role("tab", name="Mix").click()
    page.get_by_label("duration (s, 0.5 to 30)").fill("1")
    page.get_by_label("steps").fill("4")
    box = page.get_by_role("spinbutton", name=re.compile(r"^number input for drums \(CAA\)"))
    box.fill("-1.5")
    box.press("Enter")
    page.get_by_role("button", name="Mix", exact=True).click()
    caption = page.get_by_label("what was mixed", exact=True)
    wait_for_text(page, caption, "mix of drums (CAA) alpha -1.5", 120, "no mix caption")
    assert "tempo" not in caption.input_value()
