"""The console in a real browser: Debian's headless Chromium driven by
Selenium through chromium-driver, against the stack's nginx. One browser
for the module, signed in once; each test works through the pages as an
operator would and checks the result both on the page and over the API
(validate's answer). No page may log an error in the browser console, and
no hostile value may run as script. Screenshots of every page go to the
run directory's log/screenshots (and build/screenshots, which outlives a
throw-away run)."""
import os

import pytest
import requests

from util import (RUN_DIR, URL, admin_token, api, sql1, unique,
                  validate)
from test_console_api import run_figures

from selenium import webdriver                                   # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service            # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By                      # noqa: E402
from selenium.webdriver.common.keys import Keys                  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait   # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOTS = [os.path.join(RUN_DIR, "log", "screenshots"), os.path.join(ROOT, "build", "screenshots")]
WAIT = 15


def A(path, body=None, params=None):
    h = {"Authorization": "Bearer " + admin_token()}
    if body is None:
        return api(path, method="GET", headers=h, params=params)
    return api(path, body, headers=h)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--disable-extensions", "--no-first-run",
              "--disable-background-networking", "--disable-sync", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # chromium's temporary files (its shared memory too, under
    # --disable-dev-shm-usage) go with the test's directory, not to /tmp
    env = dict(os.environ, TMPDIR=str(tmp_path_factory.mktemp("chromium")))
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver", env=env), options=opts)
    d.set_page_load_timeout(30)
    for s in SHOTS:
        os.makedirs(s, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()


def wait(d, cond, timeout=WAIT):
    return WebDriverWait(d, timeout).until(cond)


def visible(d, css):
    return wait(d, EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def status_says(d, words):
    wait(d, EC.text_to_be_present_in_element((By.ID, "status"), words))
    return d.find_element(By.ID, "status").text


def console_errors(d):
    """Errors the page logged since the last call (each read drains)."""
    return [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def all_cookies(d):
    """Every cookie of the browser (the session's path is /api/admin/, so
    the console's pages do not see it)."""
    return d.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]


def no_alert(d):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def shot(d, name):
    """The whole page: the window grows to the page's height for the shot."""
    size = d.get_window_size()
    d.execute_script("window.scrollTo(0, 0)")
    full = d.execute_script("return document.documentElement.scrollHeight")
    chrome = size["height"] - d.execute_script("return window.innerHeight")
    d.set_window_size(size["width"], min(full + chrome, 6000))
    for s in SHOTS:
        d.save_screenshot(os.path.join(s, name + ".png"))
    d.set_window_size(size["width"], size["height"])


def go(d, hash_, ready_css):
    """The page at #/hash_, loaded afresh: a browser already there takes
    the same URL as a jump within the page and would keep what it shows."""
    url = URL + "/console/#/" + hash_
    if d.current_url == url:
        d.refresh()
    else:
        d.get(url)
    visible(d, ready_css)
    wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "[aria-busy=true]"))


def confirm(d):
    dlg = visible(d, "dialog#confirm")
    assert dlg.get_attribute("open") is not None
    d.find_element(By.ID, "confirm-ok").click()
    wait(d, lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is None)


def issue_api(plan, email, name="", domains=None, limits=None):
    assert A("/api/admin/customers", {"email": email, "name": name}).status_code == 200
    body = {"customer": email, "plan": plan, "days": 90}
    if domains is not None:
        body["domain_restrictions"] = domains
    if limits is not None:
        body["limits"] = limits
    r = A("/api/admin/licenses", body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def plan():
    code = unique("web").lower()
    r = A("/api/admin/plans", {"code": code, "name": "Web plan", "features": ["sso", "reports"],
                               "limits": {"installations": 3, "reports_per_month": 100}})
    assert r.status_code == 200, r.text
    return code


@pytest.fixture(scope="module")
def signed_in(browser):
    d = browser
    d.get(URL + "/console/")
    token = visible(d, "#token")
    token.send_keys(admin_token())
    token.send_keys(Keys.ENTER)
    visible(d, "#nav a[href='#/overview']")
    status_says(d, "Signed in as local")
    go(d, "overview", "#chart-validations svg")
    # the token is nowhere in the browser: not in storage, the URL or a readable cookie
    tok = admin_token()
    assert tok not in d.current_url
    assert d.execute_script("return document.cookie") == ""
    assert d.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert tok not in d.page_source
    cookies = {c["name"]: c for c in all_cookies(d)}
    assert cookies["licd_session"]["httpOnly"] is True
    assert cookies["licd_session"]["sameSite"] == "Strict"
    assert cookies["licd_session"]["path"] == "/api/admin/"
    assert console_errors(d) == []
    return d


def test_sign_in_page_and_a_wrong_token(browser):
    d = browser
    d.get(URL + "/console/")
    token = visible(d, "#token")
    shot(d, "00-sign-in")
    token.send_keys("not-a-token")
    token.send_keys(Keys.ENTER)
    assert "not an admin token" in status_says(d, "not an admin token")
    assert token.get_attribute("value") == ""
    # the 401 is the answer expected here; anything else logged is a fault
    errs = [e for e in console_errors(d) if "/api/admin/session" not in e["message"]]
    assert errs == []


def test_search_a_license_by_email_and_by_installation_id(signed_in, plan):
    d = signed_in
    email = unique("find") + "@example.com"
    lic = issue_api(plan, email, "Finder")
    other = issue_api(plan, unique("other") + "@example.com")
    iid = unique("host")
    assert validate(lic["license_key"], iid, version="3.1").json()["code"] == "VALID"
    lid = lic["license"]["id"]
    go(d, "licenses", "#lic-q")
    q = d.find_element(By.ID, "lic-q")
    for term in (email[:14], iid, lic["license_key"]):
        q.clear()
        q.send_keys(term)      # search as you type: no submit
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "a[href='#/license/%s']" % lid)))
        wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 1)
        assert not d.find_elements(By.CSS_SELECTOR, "a[href='#/license/%s']" % other["license"]["id"])
    # no URL the page fetched carries what was searched for
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/api/admin/licenses/search" in u for u in urls)
    assert not [u for u in urls if lic["license_key"][-20:] in u or iid in u]
    q.clear()
    q.send_keys(unique("nothing"))
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "No license matches."))
    # filters: by plan and status
    q.clear()
    Select(d.find_element(By.ID, "lic-plan")).select_by_value(plan)
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "a[href='#/license/%s']" % lid)))
    shot(d, "02-licenses")
    assert console_errors(d) == []


def test_suspend_then_reinstate_with_confirmation(signed_in, plan):
    d = signed_in
    lic = issue_api(plan, unique("sus") + "@example.com")
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "web-1").json()["code"] == "VALID"
    go(d, "license/" + lid, "#actions")
    # cancelling changes nothing
    d.find_element(By.XPATH, "//section[@id='actions']//button[text()='Suspend']").click()
    visible(d, "dialog#confirm")
    d.find_element(By.ID, "confirm-cancel").click()
    status_says(d, "Suspend: cancelled.")
    assert validate(key, "web-1").json()["code"] == "VALID"
    d.find_element(By.ID, "act-reason").send_keys("chargeback under review")
    d.find_element(By.XPATH, "//section[@id='actions']//button[text()='Suspend']").click()
    confirm(d)
    status_says(d, "The license is now suspended.")
    assert validate(key, "web-1").json()["code"] == "SUSPENDED"
    btn = wait(d, EC.element_to_be_clickable(
        (By.XPATH, "//section[@id='actions']//button[text()='Reinstate']")))
    assert "chargeback under review" in d.find_element(By.ID, "timeline").text
    btn.click()
    confirm(d)
    status_says(d, "The license is now active.")
    assert validate(key, "web-1").json()["code"] == "VALID"
    assert sql1("SELECT actor FROM audit_log WHERE target_id = %s AND action = "
                "'license.suspend'", lid) == "local"
    assert console_errors(d) == []


def test_issue_a_license_and_see_its_key_once(signed_in, plan):
    d = signed_in
    email = unique("new") + "@example.com"
    go(d, "issue", "#issue-form")
    d.find_element(By.ID, "iss-email").send_keys(email)
    d.find_element(By.ID, "iss-name").send_keys("New Buyer")
    Select(d.find_element(By.ID, "iss-plan")).select_by_value(plan)
    days = d.find_element(By.ID, "iss-days")
    days.clear()
    days.send_keys("45")
    d.find_element(By.ID, "iss-domains").send_keys("buyer.example\n*.buyer.example")
    shot(d, "04-issue")
    d.find_element(By.CSS_SELECTOR, "#issue-form button[type=submit]").click()
    confirm(d)
    box = visible(d, "#new-key")
    key = box.get_attribute("value")
    assert key.count(".") == 2
    assert "shown only now" in d.find_element(By.CSS_SELECTOR, ".keybox").text
    shot(d, "05-issued-key")
    r = validate(key, "first", domain="app.buyer.example").json()
    assert r["code"] == "VALID" and r["license"]["plan"] == plan
    lid = r["license"]["id"]
    assert sql1("SELECT name FROM customers WHERE lower(email) = lower(%s)", email) == "New Buyer"
    # the key is never shown again: not on the license's page
    go(d, "license/" + lid, "#actions")
    assert key not in d.page_source
    assert key.split(".")[2] not in d.page_source
    assert console_errors(d) == []


def test_reissue_a_key_and_see_it_once(signed_in, plan):
    d = signed_in
    lic = issue_api(plan, unique("re") + "@example.com")
    lid, old = lic["license"]["id"], lic["license_key"]
    assert validate(old, "re-1").json()["code"] == "VALID"
    go(d, "license/" + lid, "#actions")
    d.find_element(By.ID, "act-reason").send_keys("customer lost the key")
    d.find_element(By.ID, "reissue-key").click()
    confirm(d)
    status_says(d, "Reissue key: done.")
    key = visible(d, "#new-key").get_attribute("value")
    assert key.count(".") == 2 and key != old
    assert "shown only now" in d.find_element(By.CSS_SELECTOR, "#actions .keybox").text
    r = validate(key, "re-1").json()
    assert r["code"] == "VALID" and r["license"]["id"] == lid, r
    assert validate(old, "re-1").json()["code"] == "VALID"   # until its kid retires
    assert sql1("SELECT license_key FROM licenses WHERE id = %s", lid) == key
    assert sql1("SELECT reason FROM audit_log WHERE target_id = %s AND action = "
                "'license.reissue' AND actor = 'local'", lid) == "customer lost the key"
    # shown once: not after the page is opened again
    go(d, "license/" + lid, "#actions")
    assert key.split(".")[2] not in d.page_source
    assert console_errors(d) == []


def test_edit_domains_and_a_new_domain_is_refused(signed_in, plan):
    d = signed_in
    lic = issue_api(plan, unique("dom") + "@example.com", domains=["old.example"])
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "d-1", domain="old.example").json()["code"] == "VALID"
    go(d, "license/" + lid, "#edits")
    ta = d.find_element(By.ID, "edit-domains")
    ta.clear()
    ta.send_keys("shop.example")
    d.find_element(By.ID, "save-save-domains").click()
    confirm(d)
    status_says(d, "Save domains: saved.")
    visible(d, "#edits")
    assert validate(key, "d-1", domain="old.example").json()["code"] == "DOMAIN_NOT_ALLOWED"
    assert validate(key, "d-2", domain="new.example").json()["code"] == "DOMAIN_NOT_ALLOWED"
    assert validate(key, "d-1", domain="shop.example").json()["code"] == "VALID"
    assert "shop.example" in d.find_element(By.CSS_SELECTOR, "dl.claims").text
    # a bad entry is refused in words and nothing changes
    ta = d.find_element(By.ID, "edit-domains")
    ta.clear()
    ta.send_keys("bad_domain!.example")
    d.find_element(By.ID, "save-save-domains").click()
    confirm(d)
    assert "Save domains failed" in status_says(d, "INVALID_FIELD")
    assert validate(key, "d-1", domain="shop.example").json()["code"] == "VALID"
    errs = [e for e in console_errors(d) if "/edit" not in e["message"]]
    assert errs == []    # the refused edit's 400 is the only message expected


def test_overview_charts_render(signed_in, plan):
    d = signed_in
    lic = issue_api(plan, unique("chart") + "@example.com")
    for i in range(3):
        validate(lic["license_key"], "c-%d" % i, version="9.%d" % i)
    validate("nonsense", "c-x")
    # the counts are flushed behind the answers; wait for them in the API
    today = lambda: A("/api/admin/overview").json()["validations"][-1]["codes"]
    assert wait(d, lambda d: today().get("VALID", 0) >= 3 and today().get("INVALID_KEY", 0) >= 1)
    as_of = run_figures()         # the lifecycle job counts the versions in the field
    go(d, "overview", "#chart-validations svg")
    bars = d.find_elements(By.CSS_SELECTOR, "#chart-validations svg rect.bar")
    assert len(bars) >= 2             # VALID and INVALID_KEY today at least
    assert all(float(b.get_attribute("height")) >= 0 for b in bars)
    legend = d.find_element(By.CSS_SELECTOR, "#chart-validations .legend").text
    assert "VALID" in legend and "INVALID_KEY" in legend
    assert len(d.find_elements(By.CSS_SELECTOR, "#chart-status svg rect.bar")) == 4
    assert d.find_elements(By.CSS_SELECTOR, "#chart-versions svg rect.bar")
    label = d.find_element(By.CSS_SELECTOR, "#chart-status svg").get_attribute("aria-label")
    assert "active:" in label
    said = d.find_element(By.ID, "overview-as-of").text
    assert "installations seen, versions and usage as of " + as_of.replace("T", " ").replace(
        "Z", " UTC") in said
    size = d.find_element(By.CSS_SELECTOR, "#chart-validations svg").size
    assert size["width"] > 300 and size["height"] > 80
    shot(d, "01-overview")
    assert console_errors(d) == []


def test_hostile_values_render_as_text(signed_in, plan):
    d = signed_in
    name = "<img src=x onerror=alert(1)>"
    meta = {"note": "<script>alert(2)</script>", "x": "<img src=y onerror=alert(3)>"}
    lic = issue_api(plan, unique("xss") + "@example.com", name=name)
    lid, key = lic["license"]["id"], lic["license_key"]
    assert validate(key, "evil-1", version="<b>1</b>", metadata=meta).json()["code"] == "VALID"
    assert A("/api/admin/licenses/%s/suspend" % lid,
             {"reason": "<svg onload=alert(4)>"}).status_code == 200
    go(d, "license/" + lid, "#installations")
    text = d.find_element(By.TAG_NAME, "main").text
    assert name in text
    assert "<script>alert(2)</script>" in text and "<b>1</b>" in text
    assert "<svg onload=alert(4)>" in text
    assert no_alert(d)
    # nothing was parsed as markup
    assert d.execute_script(
        "return document.querySelectorAll('main img, main script, main b, main [onerror], main [onload]').length") == 0
    shot(d, "03-license-detail")
    go(d, "customers", "#cust-q")
    q = d.find_element(By.ID, "cust-q")
    q.send_keys(lic["license"]["email"])
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main table"), name))
    go(d, "licenses/" + lic["license"]["email"], "#lic-q")
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main table"), name))
    go(d, "audit", "#aud-target")
    d.find_element(By.ID, "aud-target").send_keys(lid)
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main table"), "<svg onload=alert(4)>"))
    assert no_alert(d)
    assert d.execute_script("return document.querySelectorAll('img, script:not([src]), svg[onload]').length") == 0
    assert console_errors(d) == []


PAGES = [("overview", "#chart-validations svg"), ("licenses", "#lic-q"), ("issue", "#issue-form"),
         ("customers", "#cust-q"), ("plans", "#plan-form"), ("audit", "#aud-actor"),
         ("notifications", "#ntf-status"), ("keys", "main table")]


def test_every_page_at_1280_and_on_a_phone(signed_in, plan):
    d = signed_in
    lic = issue_api(plan, unique("pages") + "@example.com")
    api("/api/usage", {"license_key": lic["license_key"], "feature": "reports", "quantity": 40})
    sql1("SELECT licd_notify('license_issued', %s, NULL, '{}')", lic["license"]["id"])
    for width, height, tag in ((1280, 900, ""), (390, 844, "-phone")):
        d.set_window_size(width, height)
        for n, (page, css) in enumerate(PAGES + [("license/" + lic["license"]["id"], "#chart-usage svg")]):
            go(d, page, css)
            name = "%02d-%s%s" % (10 + n, page.split("/")[0], tag)
            shot(d, name)
            # nothing wider than the window: tables scroll in their own box
            over = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert over <= 1, (name, over)
            assert console_errors(d) == [], name
    d.set_window_size(1280, 900)
    # the usage chart shows this month's 40 reports
    go(d, "license/" + lic["license"]["id"], "#chart-usage svg")
    label = d.find_element(By.CSS_SELECTOR, "#chart-usage svg").get_attribute("aria-label")
    assert "reports 40" in label
    # the signing keys page names the current key
    go(d, "keys", "main table")
    jwks = api("/.well-known/jwks.json", method="GET").json()
    assert jwks["keys"][0]["kid"] in d.find_element(By.TAG_NAME, "main").text
    assert "current" in d.find_element(By.TAG_NAME, "main").text


def test_keyboard_only(signed_in):
    d = signed_in
    go(d, "overview", "#chart-validations svg")
    # the first stop of the page is the skip link (focused here as a Tab
    # from the address bar would); Enter on it moves focus to the content
    d.execute_script("document.querySelector('.skip').focus()")
    skip = d.switch_to.active_element
    assert skip.get_attribute("class") == "skip" and skip.is_displayed()
    assert skip.location["x"] >= 0
    seen = []
    for _ in range(4):
        ActionChains(d).send_keys(Keys.TAB).perform()
        seen.append(d.switch_to.active_element.get_attribute("href") or "")
    assert seen[:2] == [URL + "/console/#/overview", URL + "/console/#/licenses"]
    # Enter on a nav link opens it; the skip link focuses the content
    # without changing the page
    d.execute_script("document.querySelector('.skip').click()")
    assert d.switch_to.active_element.get_attribute("id") == "main"
    assert d.current_url.endswith("#/overview")
    d.execute_script("document.querySelector('#nav a[href=\"#/licenses\"]').focus()")
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait(d, lambda d: "#/" in d.current_url and "overview" not in d.current_url)
    # a confirmation is answered with the keyboard: Escape cancels
    lic = A("/api/admin/licenses", params={"status": "active", "limit": 1}).json()["licenses"][0]
    go(d, "license/" + lic["id"], "#actions")
    b = d.find_element(By.XPATH, "//section[@id='actions']//button[text()='Reset activations']")
    b.send_keys(Keys.ENTER)
    visible(d, "dialog#confirm")
    d.switch_to.active_element.send_keys(Keys.ESCAPE)
    status_says(d, "Reset activations: cancelled.")
    assert console_errors(d) == []


def test_sign_out_ends_the_session(signed_in):
    d = signed_in
    go(d, "overview", "#chart-validations svg")
    cookie = {c["name"]: c for c in all_cookies(d)}["licd_session"]["value"]
    d.find_element(By.ID, "signout").click()
    visible(d, "#token")
    status_says(d, "Signed out.")
    r = requests.get(URL + "/api/admin/session", cookies={"licd_session": cookie})
    assert r.json() == {"signed_in": False}
    r = requests.get(URL + "/api/admin/plans", cookies={"licd_session": cookie})
    assert r.status_code == 401
    d.get(URL + "/console/#/licenses")
    visible(d, "#token")
    assert console_errors(d) == []
