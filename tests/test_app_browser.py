"""The web demo in a real browser: headless Chromium (Debian's ``chromium`` + ``chromedriver``)
driven by selenium uploads the example photo, presses Reconstruct, waits for the fitted body,
the turntable video and the 3D viewer, saves a screenshot and checks that the viewer's canvas
shows something (a WebGL canvas cannot be read back reliably, so its on-screen pixels are);
then switches the viewer to the body parts (the canvas changes and is still not blank) and
animates the result (the animation's video appears). A second page stops a run on the
visitor's own photo. Skipped, with the reason, only where
Chromium or its driver is not installed."""

from __future__ import annotations

import io
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from app_server import ROOT, app_server, copies_of  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(480)]

EXAMPLE = ROOT / "examples" / "astronaut.jpg"
# flags checked with Debian's chromium: software WebGL so the splat viewer renders headless
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--window-size=1100,1400")


def _browser_paths():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chrome is None or driver is None:
        reason = ("headless browser test skipped: "
                  + ("no chromium" if chrome is None else "no chromedriver")
                  + " on PATH (Debian: apt-get install chromium chromium-driver)")
        print(reason)
        pytest.skip(reason)
    return chrome, driver


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = _browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = cond(driver)
        except Exception:  # noqa: BLE001 - element not there yet / re-rendered
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.25)


def _click(driver, element) -> None:
    """A click dispatched by the page itself: WebDriver's own click waits for the next
    frames, which take seconds each while the software-rendered splat viewer is on screen."""
    driver.execute_script("arguments[0].click();", element)


def _canvas_pixels(canvas) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"))


def _not_blank(pixels: np.ndarray) -> bool:
    """More than a flat background: real variation and many distinct colours."""
    flat = pixels.reshape(-1, 3)
    distinct = len(np.unique(flat[:: max(1, len(flat) // 20000)], axis=0))
    return float(pixels.std()) > 3.0 and distinct > 50


def test_upload_reconstruct_and_see_the_splat(app_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    css = lambda sel: (lambda d: d.find_element(By.CSS_SELECTOR, sel))  # noqa: E731
    before = set(app_server.sessions())
    browser.get(app_server.url)
    upload = _wait(browser, css("#photo input[type=file]"), 60, "the photo input")
    upload.send_keys(str(EXAMPLE))
    _wait(browser, css("#photo img"), 30, "the uploaded photo to show")
    # the privacy note and the CPU notice are on the page
    assert "Privacy" in browser.find_element(By.CSS_SELECTOR, "#privacy").text
    assert "CPU" in browser.find_element(By.CSS_SELECTOR, "#notice").text

    browser.find_element(By.CSS_SELECTOR, "#run").click()
    t0 = time.perf_counter()
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#body img").get_attribute("src"),
          120, "the fitted body (first result)")
    first = time.perf_counter() - t0
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#viewer canvas"), 120,
          "the 3D viewer")
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#turntable video")
          .get_attribute("src"), 120, "the turntable video")
    done = time.perf_counter() - t0
    canvas = browser.find_element(By.CSS_SELECTOR, "#viewer canvas")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
    def drawn(d):  # the canvas as it is on screen, once it is not blank (else None)
        pixels = _canvas_pixels(d.find_element(By.CSS_SELECTOR, "#viewer canvas"))
        return Image.fromarray(pixels) if _not_blank(pixels) else None

    drawn_canvas = _wait(browser, drawn, 30, "the splat to be drawn in the viewer canvas")

    shot = tmp_path / "app_browser.png"
    browser.save_screenshot(str(shot))
    drawn_canvas.save(tmp_path / "viewer_canvas.png")
    print(f"\nscreenshot: {shot}\nviewer canvas: {tmp_path / 'viewer_canvas.png'}\n"
          f"click -> fitted body {first:.1f} s, click -> turntable + viewer {done:.1f} s")

    # the viewer toggle: the same Model3D shows the splat coloured by body part
    before_parts = np.asarray(drawn_canvas, np.float32)
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#part-view input[value='all']"))

    last: list[np.ndarray] = []

    def recoloured(d):  # changed, not blank, and settled (the viewer has loaded the file)
        pixels = _canvas_pixels(d.find_element(By.CSS_SELECTOR, "#viewer canvas")
                                ).astype(np.float32)
        settled = bool(last) and last[-1].shape == pixels.shape and \
            np.abs(pixels - last[-1]).mean() < 0.5
        last.append(pixels)
        changed = pixels.shape == before_parts.shape and \
            np.abs(pixels - before_parts).mean() > 2.0
        ok = settled and changed and _not_blank(pixels)
        return Image.fromarray(pixels.astype(np.uint8)) if ok else None

    t1 = time.perf_counter()
    _wait(browser, recoloured, 150, "the viewer to show the body parts").save(
        tmp_path / "viewer_parts.png")
    parts_s = time.perf_counter() - t1
    # the Animate tab: pick a motion, press Animate, the video appears
    _click(browser, browser.find_element(By.XPATH,
                                         "//button[@role='tab'][contains(., 'Animate')]"))
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#animate").is_enabled(), 10,
          "the Animate button")
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#motion input[value='wave']"))
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#animate"))
    t1 = time.perf_counter()
    src = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#animation video")
                .get_attribute("src"), 60, "the animation video")
    assert "wave.mp4" in src, src
    browser.save_screenshot(str(tmp_path / "app_animate.png"))
    print(f"part view {parts_s:.1f} s, animation {time.perf_counter() - t1:.1f} s after the "
          f"click (viewer parts: {tmp_path / 'viewer_parts.png'})")

    summary = browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert "Gaussians" in summary and "body fit" in summary
    assert browser.find_element(By.CSS_SELECTOR, "#ply").is_enabled()
    # the page's session has its folder; closing the page removes it
    page_sessions = set(app_server.sessions()) - before
    assert len(page_sessions) == 1
    browser.get("about:blank")
    _wait(browser, lambda d: not page_sessions & set(app_server.sessions()), 30,
          "the session to end with its page")


def test_stop_a_run_on_my_own_photo(app_server, browser, tmp_path):
    """A fresh page (no splat viewer drawing in software, so the page answers at once): a run
    on a visitor's own photo, stopped early. Its work ends, it writes no result, and the
    photo leaves the server with the session."""
    from selenium.webdriver.common.by import By

    from humansplat.reconstruction import OUTPUT_FILES

    before = set(app_server.sessions())
    own = tmp_path / "my_photo.png"
    Image.open(EXAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(own)
    browser.get(app_server.url)
    upload = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#photo input[type=file]"),
                   60, "the photo input")
    upload.send_keys(str(own))
    _wait(browser, lambda d: any(p.name == own.name for p in app_server.temp_dir.rglob("*")),
          30, "the upload to reach the server")
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#photo img"), 30,
          "the uploaded photo to show")
    page_sessions = set(app_server.sessions()) - before
    assert len(page_sessions) == 1
    session_dir = app_server.work_dir / next(iter(page_sessions))  # its private runs
    run, stop = (browser.find_element(By.CSS_SELECTOR, sel) for sel in ("#run", "#stop"))
    _click(browser, run)
    _wait(browser, lambda d: list(session_dir.glob("run-*")), 30, "the run to start")
    run_dir = next(session_dir.glob("run-*"))
    # Stop cancels the event the page knows it is running: click once the page shows it
    try:
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".progress-text, .eta-bar, "
                                                 ".progress-level"), 60, "the run's progress")
    except AssertionError:
        browser.save_screenshot(str(tmp_path / "no_progress.png"))
        print(f"page: {tmp_path / 'no_progress.png'}\nserver log:\n{app_server.log_tail()}")
        raise
    _click(browser, stop)
    stopped = time.perf_counter()
    try:
        _wait(browser, lambda d: f"a run was stopped before it finished ({run_dir.name})"
              in app_server.log_tail(20000), 60, "the server to stop the run")
    except AssertionError:
        browser.save_screenshot(str(tmp_path / "not_stopped.png"))
        print(f"page: {tmp_path / 'not_stopped.png'}\nserver log:\n{app_server.log_tail()}")
        raise
    print(f"run stopped {time.perf_counter() - stopped:.1f} s after Stop was clicked")
    time.sleep(1.0)
    # the splat's files are written (and shown) before the turntable, so a Stop that lands
    # during the turntable leaves them; the turntable, the run's last file, must not appear
    assert not (run_dir / "result" / OUTPUT_FILES["video"]).exists(), \
        "the stopped run went on to finish"
    assert app_server.alive()

    browser.get("about:blank")
    _wait(browser, lambda d: not page_sessions & set(app_server.sessions()), 30,
          "the session to end with its page")
    own_bytes = own.read_bytes()

    def left():  # None (look again) while the cleanup removes a folder under the scan
        found = copies_of(own_bytes, app_server.temp_dir, app_server.work_dir)
        return [None] if found is None else found

    # the shared upload waits up to 10 s, in case another session has just sent the same bytes
    deadline = time.monotonic() + 40
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left(), f"the visitor's photo outlived the session: {left()}"
