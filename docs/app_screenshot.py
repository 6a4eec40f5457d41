"""Make docs/images/app.png: serve the demo, upload a sample portrait in headless Chromium, screenshot it.

    python docs/app_screenshot.py --ckpt CKPT [--out docs/images/app.png]

Needs the [app] and [dev] extras (Gradio, selenium) and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/fixtures/p3m_samples/validation/P3M-500-NP/original_image/p_bd6af989.jpg"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1500",
]


def main() -> None:
    """Serve, upload, wait for the result, save a palette PNG under 500 KB."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs/images/app.png"))
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            "src/app.py",
            f"ckpt_path={args.ckpt}",
            "device=cpu",
            f"server_port={args.port}",
            "max_short_side=512",
            "test_strategy=hybrid",
        ],
        cwd=ROOT,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
    try:
        for _ in range(120):  # the model loads first
            try:
                driver.get(f"http://127.0.0.1:{args.port}/")
                break
            except Exception:
                time.sleep(1)
        wait = WebDriverWait(driver, 180)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        driver.find_elements(By.CSS_SELECTOR, "input[type=file]")[0].send_keys(str(SAMPLE))
        time.sleep(3)
        button = next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Matte")
        colour = next(e for e in driver.find_elements(By.CSS_SELECTOR, "label") if e.text.strip() == "colour")
        colour.click()
        button.click()
        wait.until(
            lambda d: "s" in (d.find_elements(By.CSS_SELECTOR, "textarea")[-1].get_attribute("value") or "")
        )
        time.sleep(3)
        driver.execute_script("window.scrollTo(0, 0);")
        time.sleep(1)
        png = Path(args.out).with_suffix(".raw.png")
        driver.save_screenshot(str(png))
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
    Image.open(png).convert("RGB").quantize(colors=256).save(args.out, optimize=True)
    png.unlink()
    print(args.out, Path(args.out).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
