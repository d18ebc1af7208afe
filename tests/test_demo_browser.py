"""The demo in a real browser (Debian's chromium, driven by Playwright) with the real shipped models.

``lit-lite0-minilm`` over the sample clip art (tests/data/images: pictures held out of its training) must put the
described picture first, ``code-minilm`` the described function, ``minilm`` the matching sentence; an uploaded
picture must find itself; a corrupt upload must show its reason. Screenshots of each step go to
``$GPTE_TEST_ARTIFACTS`` (or the test's temporary folder). The page must fetch nothing from outside the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():  # pragma: no cover - the test setup installs Debian's chromium
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
SAMPLES = Path(__file__).resolve().parent / "data" / "images"
TIMEOUT_MS = 180_000  # first searches load the models and index on a small shared CPU
CONFIG_PY = ('def load_config(path):\n    import tomllib\n    with open(path, "rb") as fh:\n'
             '        return tomllib.load(fh)\n\n\ndef fnv1a(data):\n    h = 2166136261\n    for b in data:\n'
             '        h = ((h ^ b) * 16777619) & 0xFFFFFFFF\n    return h\n')


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GPTE_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts")) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from gpte.demo import DemoConfig
    from gpte.demo.app import build_app, launch

    tmp = tmp_path_factory.mktemp("demo-browser")
    (tmp / "ws").mkdir()
    (tmp / "ws" / "config.py").write_text(CONFIG_PY, encoding="utf-8")
    app = build_app(DemoConfig(image_folders=[SAMPLES], code_folders=[tmp / "ws"], cache_dir=tmp / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(app, port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser_page(url):
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("request", lambda request: requests.append(request.url))
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        try:
            yield page, requests
        finally:
            browser.close()


def _first_caption(page):
    return page.locator("#image-gallery .caption-label").first


def test_search_images_by_text_then_by_uploaded_image(browser_page, artifacts, tmp_path):
    page, _ = browser_page
    expect = sync_api.expect
    page.fill("#image-query textarea", "train (roadsigns, transportation)")
    page.click("#image-search")
    expect(_first_caption(page)).to_contain_text("03-transportation.png", timeout=TIMEOUT_MS)
    assert "16 images in the index" in page.locator("#image-status textarea").input_value()
    assert page.locator("#image-gallery .caption-label").count() == 12
    page.screenshot(path=str(artifacts / "1-images-by-text.png"), full_page=True)

    page.fill("#image-query textarea", "pink rose tess brady (flowers, plants)")
    page.press("#image-query textarea", "Enter")
    expect(_first_caption(page)).to_contain_text("09-plants.png", timeout=TIMEOUT_MS)

    page.fill("#image-query textarea", "")
    page.set_input_files("#image-upload input[type=file]", str(SAMPLES / "06-animals.png"))
    page.click("#image-search")
    expect(_first_caption(page)).to_contain_text("06-animals.png", timeout=TIMEOUT_MS)  # the picture finds itself
    assert _first_caption(page).inner_text().startswith("1. 1.000")
    page.screenshot(path=str(artifacts / "2-images-by-upload.png"), full_page=True)


def test_a_corrupt_upload_shows_its_reason(browser_page, artifacts, tmp_path):
    page, _ = browser_page
    broken = tmp_path / "holiday.png"
    broken.write_bytes((SAMPLES / "01-food.png").read_bytes()[:100])  # a PNG cut short
    clear = page.locator("#image-upload button[aria-label='Clear']")
    if clear.count():  # the previous test left its query picture in place
        clear.click()
    page.locator("#image-upload input[type=file]").set_input_files(str(broken), timeout=20_000)
    toast = page.get_by_text("holiday.png: not a usable image")
    sync_api.expect(toast).to_be_visible(timeout=30_000)
    page.screenshot(path=str(artifacts / "3-bad-upload.png"))  # the viewport, where the pop-up is


def test_search_code(browser_page, artifacts):
    page, _ = browser_page
    page.get_by_role("tab", name="Code").click()
    page.fill("#code-query textarea", "read a TOML configuration file")
    page.click("#code-search")
    first_row = page.locator("#code-table .virtual-row[data-index='0']")
    sync_api.expect(first_row).to_contain_text("load_config", timeout=TIMEOUT_MS)
    assert "config.py:1-4" in first_row.inner_text()
    sync_api.expect(page.locator("#code-snippet")).to_contain_text("def load_config(path):")
    page.locator("#code-table [data-testid='cell-1-2']").click()  # the second result's code
    sync_api.expect(page.locator("#code-snippet")).to_contain_text("def fnv1a(data):")
    page.screenshot(path=str(artifacts / "4-code.png"), full_page=True)


def test_search_texts_and_compare_two(browser_page, artifacts):
    page, _ = browser_page
    page.get_by_role("tab", name="Texts").click()
    page.fill("#text-query textarea", "when does the next train depart")
    page.click("#text-search")
    first_row = page.locator("#text-table .virtual-row[data-index='0']")
    sync_api.expect(first_row).to_contain_text("Trains leave the central station", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Compare").click()
    similarity = page.locator("#similarity input")
    sync_api.expect(similarity).to_have_value(re.compile(r"^0\.\d+$"), timeout=TIMEOUT_MS)  # was 0 before
    assert 0.2 < float(similarity.input_value()) < 1.0  # related sentences, not the same one
    page.screenshot(path=str(artifacts / "5-texts.png"), full_page=True)


def test_the_page_fetched_nothing_from_outside(browser_page):
    _, requests = browser_page
    hosts = {urlparse(u).hostname for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert requests and hosts == {"127.0.0.1"}, hosts
