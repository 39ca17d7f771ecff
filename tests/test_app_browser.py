"""The web app as a person uses it: headless Chromium (the distribution's package, driven by Playwright) uploads a
real WFDB record (.hea and .dat), presses Score, waits for the scores, checks the top label and the 12-lead plot,
and takes a screenshot.

Outside CI the test is skipped, with the reason, when Chromium or Playwright is not installed; with ``CI`` set
it fails instead (``.ci/run`` installs Chromium with apt-get). Playwright's own browser download is not used:
Chromium is launched from ``shutil.which("chromium")``.
"""

import os
import shutil
import socket

import pytest


def _need(what: str):
    message = f"{what}; the browser test needs it (Debian/Ubuntu: apt-get install chromium; pip install playwright)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _need("no chromium executable on PATH")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need("the playwright package is not installed")
    return path


@pytest.fixture(scope="module")
def app_url():
    pytest.importorskip("gradio")
    from hubert_ecg.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_upload_score_and_plot_in_a_real_browser(chromium, app_url, data_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from hubert_ecg.pipelines import load_pipeline

    record = data_dir / "ptbxl" / "records500" / "00000" / "00010_hr"
    top = load_pipeline(None)(str(record))[0]
    screenshot = tmp_path / "app.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(app_url)
            page.locator("#files input[type=file]").set_input_files([f"{record}.hea", f"{record}.dat"])
            expect(page.locator("#files tbody tr")).to_have_count(2, timeout=30_000)  # both files uploaded
            page.locator("#score").click()
            scores = page.locator("#scores")
            expect(scores).to_contain_text(f"{top['score']:.4f}".rstrip("0"), timeout=120_000)
            first_row = scores.locator("tbody tr").first
            expect(first_row).to_contain_text(top["label"])
            expect(first_row).to_contain_text("00010_hr")
            expect(page.locator("#messages")).to_contain_text("Scored 1 of 1 record(s)")
            image = page.locator("#plot img")
            expect(image).to_be_visible(timeout=120_000)
            assert image.evaluate("img => img.naturalWidth") > 1000  # the PNG was served and decoded
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 50_000
