"""Regenerate ``docs/images/app.png`` and ``docs/images/app_report.png``: the app in headless Chromium, a bundled
record scored with the demo model, the integrated-gradients overlay for MI with its legend (``app.png``: the top of
the page), and the record's report (``app_report.png``: ``hubert-ecg report``'s page, its tables and the PDF
download).

    python docs/images/make_app_screenshot.py            # needs the [app] extra, playwright and chromium

It drives the page as tests/test_app_browser.py does (Chromium from the distribution, launched by path).
"""

import shutil
import socket
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from hubert_ecg.app import build_app
from hubert_ecg.demo import demo_records

OUT = Path(__file__).resolve().parent / "app.png"
REPORT_OUT = Path(__file__).resolve().parent / "app_report.png"


def pick(page, elem_id: str, value: str) -> None:
    """Choose ``value`` in the Gradio dropdown ``#elem_id`` as a person does: click, type, Enter."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    record = next(r for r in demo_records() if r.endswith("00223_hr"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1640})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#files input[type=file]").set_input_files([f"{record}.hea", f"{record}.dat"])
            expect(page.locator("#files tbody tr")).to_have_count(2, timeout=30_000)
            page.locator("#score").click()
            expect(page.locator("#messages")).to_contain_text("Scored 1 of 1", timeout=120_000)
            expect(page.locator("#plot img")).to_be_visible(timeout=120_000)
            pick(page, "label", "MI")
            pick(page, "method", "integrated_gradients")
            expect(page.locator("#plot img")).to_have_attribute("src", __import__("re").compile("integrated"),
                                                                timeout=120_000)
            expect(page.locator("#legend")).to_contain_text("Leads by importance", timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT))  # the top of the page: upload, scores, plot and legend
            page.locator("#report_button").click()
            expect(page.locator("#report_image img")).to_be_visible(timeout=120_000)
            expect(page.locator("#report_pdf")).to_be_visible(timeout=30_000)
            page.wait_for_timeout(1000)
            page.locator("#report").screenshot(path=str(REPORT_OUT))
            browser.close()
    finally:
        app.close()
    print(f"wrote {OUT} and {REPORT_OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
