"""The playground page in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium with the driver path given): it loads, a prompt streams an answer
from a tiny model (a local `llmship serve` behind the gateway), and a bad key shows a
clear error. Skipped, saying how to enable it, where the browser is not installed."""

from __future__ import annotations

import shutil

import pytest

from llmship.config.gateway import GatewayConfig
from llmship.gateway.app import create_gateway_app
from llmship.gateway.keys import new_key
from llmship.gateway.sqlite_store import SqliteStore
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import limits_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
HOW = (
    "the playground browser test needs Debian's chromium and chromium-driver and selenium: "
    "apt-get install -y chromium chromium-driver && .venv/bin/pip install selenium==4.40.0 "
    "(.ci/run installs them)"
)
try:
    import selenium
except ImportError:
    selenium = None

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER and selenium), reason=HOW)


@pytest.fixture(scope="module")
def gateway_url(trained, tmp_path_factory):
    from llmship.serve.server import resolve_artifact

    model_dir = resolve_artifact(trained[1], tmp_path_factory.mktemp("unpacked"))
    store = SqliteStore(tmp_path_factory.mktemp("gw") / "g.db")
    key, record = new_key("browser", ["tiny"], requests_per_minute=100, tokens_per_day=10**6)
    store.put_key(record)
    with running(create_app(model_dir, "tiny", limits_for("realtime"))) as model:
        config = GatewayConfig.model_validate({"routes": {"tiny": {"targets": [{"local": model}]}}})
        with running(create_gateway_app(config, store)) as url:
            yield url, key


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_a_prompt_streams_an_answer_with_latency_and_tokens(browser, gateway_url):
    from selenium.webdriver.common.by import By

    url, key = gateway_url
    browser.get(f"{url}/playground")
    assert browser.title == "llmship playground"
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "load").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#route option"))
    assert browser.find_element(By.ID, "route").get_attribute("value") == "tiny"
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("Amanda: I baked cookies. Do you want some?\nJerry: Sure!")
    max_tokens = browser.find_element(By.ID, "max_tokens")
    max_tokens.clear()
    max_tokens.send_keys("12")
    browser.execute_script(
        "window.updates = 0; new MutationObserver(() => window.updates++).observe("
        "document.getElementById('output'), {childList: true, characterData: true, subtree: true});"
    )
    browser.find_element(By.ID, "send").click()
    _wait(browser, lambda d: d.find_element(By.ID, "stats").get_attribute("data-done") == "1")
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "output").text.strip()
    assert browser.execute_script("return window.updates") >= 2  # piece by piece
    stats = browser.find_element(By.ID, "stats").text
    assert "latency" in stats and "first token" in stats
    assert "prompt +" in stats and "completion tokens" in stats


def test_a_bad_key_shows_a_clear_error(browser, gateway_url):
    from selenium.webdriver.common.by import By

    url, _ = gateway_url
    browser.get(f"{url}/playground")
    browser.execute_script("sessionStorage.clear()")
    field = browser.find_element(By.ID, "key")
    field.clear()
    field.send_keys("lsk-000000000000-not-a-real-key")
    browser.find_element(By.ID, "load").click()
    _wait(browser, lambda d: d.find_element(By.ID, "error").text)
    error = browser.find_element(By.ID, "error").text
    assert error.startswith("Error 401") and "API key was refused" in error
