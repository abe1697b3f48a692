"""Driving the chat page (public/) in Debian's Chromium through chromedriver.

new_driver(): a headless Chromium with its own profile directory, loopback only (every host
name but 127.0.0.1 fails to resolve), performance logging on (the WebSocket frames the page
received are readable afterwards).
ChatPage: the page's controls by their ids and data attributes; every wait is bounded.
"""

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                            TimeoutException, WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import utils as selenium_utils
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    SELENIUM_IMPORT_ERROR = None
except ImportError as exc:  # reported by conftest.py
    SELENIUM_IMPORT_ERROR = exc
    webdriver = Service = By = Keys = WebDriverWait = selenium_utils = None
    NoAlertPresentException = StaleElementReferenceException = TimeoutException = Exception
    WebDriverException = Exception


def find_binary(name, *fallbacks):
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = find_binary("chromium", "/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMEDRIVER = find_binary("chromedriver", "/usr/bin/chromedriver",
                           "/usr/lib/chromium/chromedriver")

WAIT = 10.0  # the default bound of every wait, in seconds

CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
    "--disable-background-timer-throttling",
    # Nothing leaves the machine: every name resolves to nothing, except the loopback address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--lang=en-US", "--force-device-scale-factor=1", "--hide-scrollbars",
]


def _pids_with(marker):
    """PIDs of processes whose command line holds marker (our profile directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            pids.append(int(entry.name))
    return pids


if Service is not None:
    class LoopbackService(Service):
        """chromedriver, spoken to on 127.0.0.1 (not "localhost", which may mean ::1)."""

        @property
        def service_url(self):
            return f"http://127.0.0.1:{self.port}"

        def is_connectable(self):
            return selenium_utils.is_connectable(self.port, "127.0.0.1")


class Browser:
    """One chromedriver + Chromium pair; stop() ends both, by PID if they linger."""

    def __init__(self, log_dir, width=1280, height=800, mobile=False, scale=1):
        if SELENIUM_IMPORT_ERROR is not None:
            raise RuntimeError(f"python3-selenium is not installed: {SELENIUM_IMPORT_ERROR}")
        self.profile = tempfile.mkdtemp(prefix="chatbroker-chromium-")
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in CHROME_ARGS + [f"--user-data-dir={self.profile}",
                                  f"--window-size={width},{height}"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        opts.set_capability("unhandledPromptBehavior", "ignore")
        self.service = LoopbackService(CHROMEDRIVER, port=0,
                               log_path=str(log_dir / f"{Path(self.profile).name}.log"))
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)
        self.set_viewport(width, height, mobile=mobile, scale=scale)

    def set_viewport(self, width, height, mobile=False, scale=1):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})

    def color_scheme(self, scheme):
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def stop(self):
        try:
            self.driver.quit()
        except Exception:  # the browser may be gone already; the PIDs below are checked
            pass
        proc = getattr(self.service, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        # Chromium's own processes carry our profile directory on their command line.
        for _ in range(50):
            pids = _pids_with(self.profile)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        shutil.rmtree(self.profile, ignore_errors=True)


class ChatPage:
    """The chat page of one person, on one gateway."""

    def __init__(self, browser, base_url, label):
        self.browser = browser
        self.d = browser.driver
        self.base_url = base_url
        self.label = label
        self.ws_frames = []     # payloads of the WebSocket frames received so far
        self.console = []       # browser console entries

    # -- waiting --

    def wait(self, condition, what, timeout=WAIT):
        """Wait until condition(driver) is truthy; its value is returned."""
        def safe(d):
            try:
                return condition(d)
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(safe)
        except TimeoutException:
            raise AssertionError(f"[{self.label}] timed out after {timeout}s waiting for {what}"
                                 ) from None

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    # -- joining --

    def open(self):
        self.d.get(self.base_url)
        self.wait(lambda d: self.js("return !!window.chatbroker"), "the page's script to run")

    def join(self, name, email="", wait_online=True):
        field = self.d.find_element(By.ID, "join-name")
        field.clear()
        field.send_keys(name)
        if email:
            self.d.find_element(By.ID, "join-email").send_keys(email)
        field.send_keys(Keys.ENTER)  # keyboard only
        self.wait(lambda d: self.js("return document.getElementById('app').dataset.screen")
                  == "chat", "the chat to show")
        if wait_online:
            self.wait_state("online")
            self.wait_room_joined("lobby")

    def state(self):
        return self.d.find_element(By.ID, "conn-state").get_attribute("data-state")

    def wait_state(self, want, timeout=WAIT):
        self.wait(lambda d: self.state() == want, f"connection state {want!r} (now "
                  f"{self.state()!r})", timeout)

    def gateway(self):
        return self.d.find_element(By.ID, "conn-state").get_attribute("data-gateway")

    def me_id(self):
        return self.js("return window.chatbroker.state.me.id")

    # -- rooms --

    def room_item(self, room):
        found = self.d.find_elements(By.CSS_SELECTOR, f'#room-list li[data-room="{room}"]')
        return found[0] if found else None

    def room_joined(self, room):
        return self.js("const c = window.chatbroker.state.convs.get('room:' + arguments[0]);"
                       "return !!(c && c.joined) && !window.chatbroker.state.renaming.has(arguments[0])", room)

    def wait_room_joined(self, room, timeout=WAIT):
        self.wait(lambda d: self.room_joined(room), f"room {room} joined", timeout)

    def join_room(self, room):
        box = self.d.find_element(By.ID, "new-room")
        box.send_keys(room)
        box.send_keys(Keys.ENTER)
        self.wait_room_joined(room)
        self.wait(lambda d: self.active_title() == room, f"#{room} in view")

    def click(self, find, what):
        """Click the element find() returns, finding it again if a re-render replaced it."""
        def attempt(d):
            el = find()
            if el is None:
                return False
            el.click()
            return True
        self.wait(attempt, f"to click {what}")

    def select_room(self, room):
        self.click(lambda: self.room_item(room).find_element(By.CSS_SELECTOR, ".conv-link"),
                   f"#{room}")
        self.wait(lambda d: self.active_title() == room, f"#{room} in view")

    def active_title(self):
        return self.d.find_element(By.ID, "conv-name").text

    def unread(self, room):
        return self.js(
            "const b = document.querySelector(`#room-list li[data-room=\"${arguments[0]}\"] .badge`);"
            "return b ? Number(b.dataset.unread) : null", room)

    def badge_visible(self, selector):
        return self.js("const b = document.querySelector(arguments[0]);"
                       "return !!b && !b.hidden && b.offsetParent !== null", selector)

    # -- people and direct messages --

    def members(self):
        """[(client id, name)] of the people list in view."""
        return [tuple(x) for x in self.js(
            "return [...document.querySelectorAll('#members li[data-client]')].map(li =>"
            " [li.dataset.client, li.querySelector('.member-name').textContent])")]

    def wait_member(self, name, present=True, timeout=WAIT):
        self.wait(lambda d: any(n == name for _, n in self.members()) == present,
                  f"{name} {'in' if present else 'gone from'} the people list "
                  f"(now {self.members()})", timeout)

    def open_dm_with(self, name):
        def find():
            for li in self.d.find_elements(By.CSS_SELECTOR, "#members li[data-client]"):
                if li.find_element(By.CSS_SELECTOR, ".member-name").text == name:
                    return li.find_element(By.CSS_SELECTOR, "button.member")
            return None
        self.click(find, f"{name} in the people list")
        self.wait(lambda d: self.active_title() == name, f"the conversation with {name}")

    def dm_threads(self):
        """[(peer name, unread)] of the direct message list."""
        return [tuple(x) for x in self.js(
            "return [...document.querySelectorAll('#dm-list li[data-peer]')].map(li =>"
            " [li.querySelector('.conv-label').textContent,"
            "  Number(li.querySelector('.badge').dataset.unread)])")]

    def open_dm_thread(self, name):
        def find():
            for li in self.d.find_elements(By.CSS_SELECTOR, "#dm-list li[data-peer]"):
                if li.find_element(By.CSS_SELECTOR, ".conv-label").text == name:
                    return li.find_element(By.CSS_SELECTOR, ".conv-link")
            return None
        self.click(find, f"the thread with {name}")
        self.wait(lambda d: self.active_title() == name, f"the conversation with {name}")

    # -- messages --

    def composer(self):
        return self.d.find_element(By.ID, "composer-text")

    def send(self, text):
        box = self.composer()
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
        self.wait(lambda d: box.get_attribute("value") == "", "the composer to clear")

    def send_long(self, text):
        """Put text into the composer by script (fast for long text), then press Enter."""
        box = self.composer()
        self.js("arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input'))", box, text)
        box.send_keys(Keys.ENTER)

    def messages(self):
        """The message list in view: [{text, author, mine, time, datetime, from}]."""
        return self.js("""
            return [...document.querySelectorAll('#messages .msg')].map(m => {
              const g = m.closest('.group');
              const a = g.querySelector('.author');
              const t = m.querySelector('time');
              return {text: m.querySelector('.msg-text').textContent,
                      author: a ? a.textContent : null, mine: g.classList.contains('mine'),
                      time: t ? t.textContent : null, datetime: t ? t.getAttribute('datetime') : null,
                      from: m.dataset.from, failed: m.classList.contains('failed'),
                      identicon: !!g.querySelector(':scope > .avatar-identicon')};
            });""")

    def wait_message(self, text, timeout=WAIT):
        def seen(d):
            return next((m for m in self.messages() if m["text"] == text), None)
        return self.wait(seen, f"message {text!r} (have {[m['text'] for m in self.messages()]})",
                         timeout)

    def sys_lines(self):
        return self.js("return [...document.querySelectorAll('#messages .sys .sys-text')]"
                       ".map(e => e.textContent)")

    def wait_sys(self, text, timeout=WAIT):
        self.wait(lambda d: text in self.sys_lines(), f"line {text!r} (have {self.sys_lines()})",
                  timeout)

    # -- errors --

    def toasts(self):
        return self.js("return [...document.querySelectorAll('#toasts .toast')].map(t => ({"
                       "code: t.dataset.code, kind: t.className,"
                       "title: t.querySelector('.toast-title').textContent,"
                       "text: (t.querySelector('.toast-text') || {}).textContent || '',"
                       "visible: t.offsetParent !== null}))")

    def wait_toast(self, code, timeout=WAIT):
        return self.wait(lambda d: next((t for t in self.toasts() if t["code"] == code
                                         and t["visible"]), None),
                         f"an error toast {code!r} (have {self.toasts()})", timeout)

    # -- what the browser saw --

    def alert_present(self):
        try:
            self.d.switch_to.alert
            return True
        except NoAlertPresentException:
            return False

    def collect_logs(self):
        """Drain chromedriver's logs: WebSocket frames received, console entries."""
        for entry in self.d.get_log("performance"):
            try:
                msg = json.loads(entry["message"])["message"]
            except (KeyError, ValueError):
                continue
            if msg.get("method") == "Network.webSocketFrameReceived":
                self.ws_frames.append(msg["params"]["response"]["payloadData"])
        self.console.extend(self.d.get_log("browser"))
        return self.ws_frames

    def frames_received(self):
        """The JSON frames the page's WebSockets received so far (parsed)."""
        out = []
        for payload in self.collect_logs():
            try:
                out.append(json.loads(payload))
            except ValueError:
                out.append({"unparsed": payload})
        return out

    def script_errors(self):
        """Console entries that are uncaught script errors."""
        self.collect_logs()
        return [e["message"] for e in self.console
                if e.get("level") == "SEVERE" and ("Uncaught" in e.get("message", "")
                                                   or "TypeError" in e.get("message", ""))]

    def screenshot(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.d.save_screenshot(str(path)):
            raise AssertionError(f"could not write {path}")
        return path
