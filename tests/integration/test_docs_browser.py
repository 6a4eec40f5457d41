"""The documentation site: it builds as `make docs` builds it (warnings and broken references fail), and
its home page and the API page of ``p3m.load_model`` work in a real browser (headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra: make install")
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = REPO_ROOT / "docs" / "_build" / "screenshots" / "home.png"  # docs/images/docs_home.png is a copy


@pytest.fixture(scope="module")
def site() -> Path:
    """The site built as `make docs` builds it, into the same folder (``-W -n``: strict): Sphinx
    rebuilds what changed since the last build there (everything in a fresh clone)."""
    out = REPO_ROOT / "docs" / "_build" / "html"
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-n",
        "-q",
        "docs",
        str(out),
    ]
    built = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, f"the docs do not build:\n{built.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium through chromedriver (Debian's `chromium` and `chromium-driver`)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "Chromium is not installed: `make browser-deps` (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _navigation(driver: webdriver.Chrome) -> dict[str, str]:
    """The sidebar's links: text -> href."""
    links = driver.find_elements(By.CSS_SELECTOR, ".sidebar-tree a.reference")
    return {link.text.strip(): link.get_attribute("href") or "" for link in links if link.text.strip()}


def test_home_page_has_its_title_navigation_and_rendered_code(site: Path, browser: webdriver.Chrome) -> None:
    browser.get((site / "index.html").as_uri())
    assert browser.title.startswith("P3M"), browser.title
    nav = _navigation(browser)
    for page in (
        "Getting started",
        "Training",
        "Verification against the official code",
        "API reference",
        "Configuration reference",
        "Performance",
    ):
        assert page in nav, f"{page!r} missing from the navigation: {sorted(nav)}"
        assert Path(nav[page].removeprefix("file://").split("#")[0]).is_file(), nav[page]
    # code blocks are highlighted (Pygments spans), not raw text
    bash = browser.find_elements(By.CSS_SELECTOR, "div.highlight-bash pre")
    python = browser.find_elements(By.CSS_SELECTOR, "div.highlight-python pre")
    assert bash and python, "the home page's bash and Python examples are not rendered as code"
    assert "make demo" in bash[0].text and bash[0].is_displayed()
    assert python[0].find_elements(By.CSS_SELECTOR, "span.kn"), "the Python example is not highlighted"
    # the navigation works: following a link opens the page it names
    browser.get(nav["Getting started"])
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Getting started")
    browser.get((site / "index.html").as_uri())
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000


def test_api_page_documents_load_model(site: Path, browser: webdriver.Chrome) -> None:
    browser.get((site / "api.html").as_uri() + "#p3m.load_model")
    assert browser.title.startswith("API reference"), browser.title
    signature = browser.find_element(By.ID, "p3m.load_model")
    assert "load_model" in signature.text and "path" in signature.text, signature.text
    description = signature.find_element(By.XPATH, "following-sibling::dd[1]")
    assert "checkpoint" in description.text.lower(), description.text
    assert browser.find_elements(By.CSS_SELECTOR, "div.highlight-python pre span.kn")
    current = browser.find_elements(By.CSS_SELECTOR, ".sidebar-tree .current-page > a")
    assert [a.text for a in current] == ["API reference"]
    # the docstring's cross-references lead to the objects they name
    links = description.find_elements(By.CSS_SELECTOR, "a.reference.internal")
    assert links, "load_model's docstring links nothing"
    href = links[0].get_attribute("href") or ""
    browser.get(href)
    assert browser.find_elements(By.ID, href.split("#")[1]), href
