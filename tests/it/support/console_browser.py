"""Drives the workbench in Debian's Chromium through WebDriver (selenium + chromedriver), as
an auditor and a policy author would: sign in at the test's OpenID provider, find policies
by attribute, read a route's scope expression, search who can, be refused a screen, compare
a candidate, list decisions, try a request. Writes a screenshot of every screen to OUT.

Usage: python3 console_browser.py — with ARBITER (the HTTP base URL), OUT (a directory),
CHROMIUM and CHROMEDRIVER (paths). Exits non-zero, saying which step, on any failure.
"""

import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["ARBITER"]
OUT = os.environ["OUT"]

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
):
    options.add_argument(flag)
driver = webdriver.Chrome(
    service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options
)
wait = WebDriverWait(driver, 60)
step = {"name": "start"}


def at(name):
    step["name"] = name
    print(f"step: {name}", flush=True)


def shot(name):
    driver.save_screenshot(os.path.join(OUT, f"{name}.png"))


def text():
    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""  # between two pages


def expect(fragment):
    """Waits (a click's navigation may still be under way) until the page shows `fragment`."""
    try:
        WebDriverWait(driver, 30).until(lambda d: fragment in text())
    except TimeoutException:
        raise AssertionError(f"`{fragment}` is not on {driver.current_url}:\n{text()[:3000]}")


def nav(link, path):
    """Follows a tab or link and waits for its page."""
    driver.find_element(By.LINK_TEXT, link).click()
    wait.until(ec.url_contains(path))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def fill(field, value):
    e = driver.find_element(By.ID, field)
    e.clear()
    e.send_keys(value)


def sign_in(user):
    driver.get(BASE + "/console")
    wait.until(ec.presence_of_element_located((By.ID, "username")))
    if not driver.current_url.startswith(os.environ["PROVIDER"]):
        raise AssertionError(f"not sent to the provider: {driver.current_url}")
    shot(f"00-provider-sign-in-{user}")
    fill("username", user)
    driver.find_element(By.ID, "signin").click()
    wait.until(ec.url_to_be(BASE + "/console"))
    expect(f'User::"{user}"')


try:
    at("an auditor signs in and sees the overview")
    sign_in("ada")
    expect("live revision")
    expect("Reload history")
    shot("01-overview")

    at("the auditor finds the foreign-employee healthcare policies by attribute")
    nav("Policies", "/console/policies")
    fill("annotation", "tag=healthcare")
    fill("attribute", "nationality")
    driver.find_element(By.CSS_SELECTOR, "button.go").click()
    wait.until(ec.url_contains("attribute=nationality"))
    wait.until(ec.presence_of_element_located((By.ID, "policies")))
    rows = driver.find_elements(By.CSS_SELECTOR, "#policies tbody tr")
    found = [r.text for r in rows]
    if len(rows) != 1 or "hr-health-foreign-employees-need-mfa" not in found[0]:
        raise AssertionError(f"expected the one foreign-employee policy, found {found}")
    shot("02-policies-query")
    nav("hr-health-foreign-employees-need-mfa", "/console/policies/hr-health")
    expect("Routes it applies to")
    expect("/hr/employees/{id}/health")
    expect("a foreign employee's record needs MFA")
    shot("03-policy")

    at("the auditor opens the routes and reads a scope expression")
    nav("Routes", "/console/routes")
    row = driver.find_element(By.XPATH, "//tr[td[1]='/items' and td[2]='POST']")
    expression = row.find_element(By.CSS_SELECTOR, "code.scope-expression").text
    if expression != "read && (fido || otp)":
        raise AssertionError(f"/items POST needs `{expression}`")
    shot("04-routes")

    at("the auditor asks who can read health records")
    nav("Who can", "/console/access")
    Select(driver.find_element(By.ID, "kind")).select_by_value("action")
    fill("subject_type", "user")
    fill("subject_id", "alice")
    fill("resource_type", "route")
    fill("resource_id", "/item/{id}")
    driver.find_element(By.CSS_SELECTOR, "button.go").click()
    wait.until(ec.presence_of_element_located((By.ID, "results")))
    shot("05-who-can")

    at("the auditor is refused Try, which only policy authors may use")
    driver.get(BASE + "/console/try")
    expect("Not permitted")
    expect('Action::"TryRequest"')
    if driver.find_elements(By.LINK_TEXT, "Try"):
        raise AssertionError("the Try tab is shown to someone refused it")
    shot("06-try-refused")

    at("the auditor compares a candidate that drops the OTP alternative")
    nav("Proofs", "/console/proofs")
    fill("file_name", "items.cedar")
    driver.find_element(By.ID, "file_text").send_keys(open(os.environ["CANDIDATE_ITEMS"]).read())
    driver.find_element(By.ID, "compare").click()
    WebDriverWait(driver, 240).until(ec.presence_of_element_located((By.ID, "comparison")))
    row = driver.find_element(By.XPATH, "//table[@id='comparison']//tr[td[1]='POST /items']")
    if "narrower" not in row.text or "expect: deny" not in row.text or "otp" not in row.text:
        raise AssertionError(f"POST /items compares as: {row.text}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    shot("07-compare")

    at("the auditor lists recent decisions and opens one")
    nav("Decisions", "/console/decisions")
    fill("route", "/item/")
    driver.find_element(By.CSS_SELECTOR, "button.go").click()
    wait.until(ec.url_contains("route="))
    wait.until(ec.presence_of_element_located((By.ID, "decisions")))
    rows = driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")
    if not rows:
        raise AssertionError("no decision on /item/ in the window")
    shot("08-decisions")
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait.until(ec.url_matches(r"/console/decisions/[0-9a-f-]+$"))
    expect("Replayed against the live revision")
    shot("09-decision")

    at("the auditor signs out; a policy author signs in and tries a request")
    driver.find_element(By.XPATH, "//header//button[text()='Sign out']").click()
    wait.until(ec.url_contains("/console/logout"))
    expect("You are signed out")
    sign_in("sam")
    nav("Try", "/console/try")
    fill("scopes", "")
    fill("path", "/item/42")
    driver.find_element(By.ID, "decide").click()
    wait.until(ec.presence_of_element_located((By.ID, "verdict")))
    reason = driver.find_element(By.ID, "reason").text
    failed = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "code.failed-condition")]
    if reason != "insufficient_scope" or not any('context.scopes.contains("read")' in f for f in failed):
        raise AssertionError(f"reason {reason}, failed conditions {failed}")
    driver.execute_script("document.getElementById('verdict').scrollIntoView()")
    shot("10-try")
    print("OK", flush=True)
except Exception as e:  # noqa: BLE001 — report the step, keep the screen
    shot(f"failed-{step['name'].replace(' ', '-')[:60]}")
    print(f"FAILED at `{step['name']}`: {e}", file=sys.stderr, flush=True)
    sys.exit(1)
finally:
    driver.quit()
