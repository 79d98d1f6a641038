"""Cold start of the web demo: ``python app.py`` to serving, then in a real browser (headless
Chromium) the click on Reconstruct to the first result (the fitted body), to the splat in the
3D viewer, and to the turntable video; a second click shows the warm figures.

    python benchmarks/app_cold_start.py [--repeats 3] [--checkpoint SRC] [--threads 1]

Checkpoint: SRC, else the bundled ``humansplat/checkpoints/humansplat-tiny`` when present, else an
untrained ``tiny`` transformer with random weights saved to a temporary folder (the same shapes
and compute as the bundled one). Needs ``chromium`` + ``chromedriver`` for the click figures
(without them only launch-to-serving is measured).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

EXAMPLE = ROOT / "examples" / "astronaut.jpg"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", "--disable-dev-shm-usage", "--window-size=1400,1800")


def checkpoint(args, tmp: Path) -> tuple[str, str]:
    from humansplat.hub import BUNDLED_CHECKPOINT

    if args.checkpoint:
        return args.checkpoint, args.checkpoint
    if BUNDLED_CHECKPOINT.is_dir():
        return str(BUNDLED_CHECKPOINT), "bundled humansplat-tiny"
    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.pipeline import PipelineConfig

    folder = tmp / "tiny-random"
    folder.mkdir()
    LatentReconstructionTransformer(get_preset("tiny")).save_pretrained(folder)
    PipelineConfig().write(folder / "pipeline.json")
    return str(folder), "untrained tiny (random weights; bundled checkpoint not present)"


def browser():
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chrome or not driver:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in FLAGS:
        opts.add_argument(f)
    return webdriver.Chrome(service=Service(driver), options=opts)


def wait(cond, timeout_s=300.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if cond():
                return time.perf_counter()
        except Exception:  # noqa: BLE001 - not rendered yet
            pass
        time.sleep(0.05)
    raise TimeoutError("the page did not show the result in time")


def open_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(lambda: driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(EXAMPLE))
    wait(lambda: driver.find_element(By.CSS_SELECTOR, "#photo img"))


def click_to_results(driver) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    q = lambda sel: driver.find_element(By.CSS_SELECTOR, sel)  # noqa: E731
    q("#run").click()
    t0 = time.perf_counter()
    first = wait(lambda: q("#body img").get_attribute("src"))
    viewer = wait(lambda: q("#viewer canvas") and q("#ply").is_enabled())
    video = wait(lambda: q("#turntable video").get_attribute("src"))
    return {"first_result_s": first - t0, "splat_in_viewer_s": viewer - t0,
            "turntable_s": video - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--threads", type=int, default=1, help="OMP threads of the server")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/app_cold_start.json"))
    args = p.parse_args(argv)

    from humansplat.webapp.process import AppProcess

    rows = []
    with tempfile.TemporaryDirectory(prefix="humansplat-app-bench-") as tmp:
        ckpt, ckpt_desc = checkpoint(args, Path(tmp))
        env = {"HUMANSPLAT_CHECKPOINT": ckpt, "HF_HUB_OFFLINE": "1",
               "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
        for r in range(args.repeats):
            app = AppProcess.start(ROOT / "app.py", Path(tmp) / f"run{r}", env)
            row = {"launch_to_serving_s": app.startup_s}
            driver = browser()
            try:
                if driver is not None:
                    t = time.perf_counter()
                    open_page(driver, app.url)
                    row["page_load_s"] = time.perf_counter() - t
                    cold = click_to_results(driver)
                    # warm: a fresh page on the same server (the first page's software-WebGL
                    # viewer would otherwise keep competing with the server for the CPU)
                    open_page(driver, app.url)
                    warm = click_to_results(driver)
                    row.update({f"cold_{k}": v for k, v in cold.items()})
                    row.update({f"warm_{k}": v for k, v in warm.items()})
            finally:
                if driver is not None:
                    driver.quit()
                app.stop()
            rows.append(row)
            print(f"run {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v:.1f}"
                                                             for k, v in row.items()))

    keys = list(rows[0])
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    print(f"\ncheckpoint: {ckpt_desc}\n")
    print(f"{'what':<32} {'median s':>9} {'min s':>7} {'max s':>7}")
    for k in keys:
        vals = [r[k] for r in rows]
        print(f"{k:<32} {med[k]:>9.1f} {min(vals):>7.1f} {max(vals):>7.1f}")
    write_result({"benchmark": "app_cold_start", "checkpoint": ckpt_desc,
                  "server_threads": args.threads, "runs": rows, "median": med,
                  "machine": machine_info("cpu")}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
