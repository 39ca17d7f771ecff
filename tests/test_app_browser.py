"""The web app as a person uses it: headless Chromium (the distribution's package, driven by Playwright) presses Score
without a file (a message, not an error), uploads a real WFDB record (.hea and .dat), presses Score, waits for the
scores, checks the top label, the 12-lead plot and the attribution legend, opens the report and downloads its PDF,
and takes a screenshot. The same for one GE MUSE and one Philips Sierra XML file, skipped ("needs the clinical
readers") while :func:`hubert_ecg.read_ecg` cannot read them.

Outside CI the test is skipped, with the reason, when Chromium or Playwright is not installed; with ``CI`` set
it fails instead (``.ci/run`` installs Chromium with apt-get). Playwright's own browser download is not used:
Chromium is launched from ``shutil.which("chromium")``.
"""

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

# a real browser against the app: 4-5 s a test, run with the slow ones (CI runs both)
pytestmark = pytest.mark.slow


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


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def pick(page, elem_id: str, value: str) -> None:
    """Choose ``value`` in the Gradio dropdown ``#elem_id`` as a person does: click, type, Enter."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")


def open_report_and_download(page, tmp_path, name: str, top_label: str | None = None) -> None:
    """Press "Report of this record", wait for the page image, download the PDF."""
    from playwright.sync_api import expect

    page.locator("#report_button").click()
    expect(page.locator("#report_image img")).to_be_visible(timeout=120_000)
    assert page.locator("#report_image img").evaluate("img => img.naturalWidth") > 1000
    expect(page.locator("#report_text")).to_contain_text(name)
    expect(page.locator("#report_text")).to_contain_text("not a clinical tool")
    if top_label:
        expect(page.locator("#report_predictions")).to_contain_text(top_label)
    button = page.locator("#report_pdf")
    expect(button).to_be_visible(timeout=30_000)
    with page.expect_download(timeout=30_000) as download:
        button.click()
    pdf = tmp_path / "report.pdf"
    download.value.save_as(pdf)
    assert download.value.suggested_filename.endswith(".pdf") and Path(name).stem in download.value.suggested_filename
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_upload_score_and_plot_in_a_real_browser(browser, app_url, data_dir, tmp_path):
    from playwright.sync_api import expect

    from hubert_ecg.pipelines import load_pipeline

    record = data_dir / "ptbxl" / "records500" / "00000" / "00010_hr"
    top = load_pipeline(None)(str(record))[0]
    screenshot = tmp_path / "app.png"
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(app_url)
        page.locator("#score").click()  # no file yet
        expect(page.locator("#messages")).to_contain_text("No file uploaded", timeout=30_000)
        page.locator("#files input[type=file]").set_input_files([f"{record}.hea", f"{record}.dat"])
        expect(page.locator("#files tbody tr")).to_have_count(2, timeout=30_000)  # both files uploaded
        page.locator("#score").click()
        scores = page.locator("#scores")
        expect(scores).to_contain_text(f"{top['score']:.4f}".rstrip("0"), timeout=120_000)
        first_row = scores.locator("tbody tr").first
        expect(first_row).to_contain_text(top["label"])
        expect(first_row).to_contain_text("00010_hr")
        expect(page.locator("#messages")).to_contain_text("Scored 1 of 1 record(s)")
        expect(page.locator("#messages")).to_contain_text("at or above the label's threshold")
        image = page.locator("#plot img")
        expect(image).to_be_visible(timeout=120_000)
        assert image.evaluate("img => img.naturalWidth") > 1000  # the PNG was served and decoded
        pick(page, "method", "saliency")
        expect(page.locator("#legend")).to_contain_text("Leads by importance", timeout=60_000)
        expect(page.locator("#legend")).to_contain_text("Blue bands behind the leads")
        start = page.locator("#start input")
        start.fill("2")
        start.press("Enter")  # the 10 s from 2 s, explained there
        expect(page.locator("#legend")).to_contain_text("1 window(s) of 5 s from 5 s", timeout=60_000)
        expect(page.locator("#plot img")).to_have_attribute("src", re.compile(r"-2s-all\.png"))
        open_report_and_download(page, tmp_path, "00010_hr", top["label"])
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    assert screenshot.stat().st_size > 50_000


CLINICAL = {
    "muse": "clinical/muse/muse_ecg1.xml",
    "sierra": "clinical/sierra/2020-5-18_15-48-11.xml",
}


@pytest.mark.parametrize("kind", sorted(CLINICAL))
def test_clinical_xml_upload_report(kind, browser, app_url, data_dir, tmp_path):
    """One MUSE and one Sierra XML file on its own: scored, reported, the PDF offered."""
    from playwright.sync_api import expect

    from hubert_ecg import read_ecg

    path = data_dir / CLINICAL[kind]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    try:
        read_ecg(path)
    except (ValueError, ImportError) as err:
        pytest.skip(f"needs the clinical readers ({kind}: {str(err)[:80]})")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(app_url)
        page.locator("#files input[type=file]").set_input_files([str(path)])
        expect(page.locator("#files tbody tr")).to_have_count(1, timeout=30_000)
        page.locator("#score").click()
        expect(page.locator("#messages")).to_contain_text("Scored 1 of 1 record(s)", timeout=120_000)
        expect(page.locator("#scores tbody tr").first).to_contain_text(path.name)
        expect(page.locator("#plot img")).to_be_visible(timeout=120_000)
        open_report_and_download(page, tmp_path, path.name)
    finally:
        page.close()
