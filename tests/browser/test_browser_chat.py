"""The chat page (public/) in real Chromium, against a real redis-server and two real gateways.

Pages on different gateways meet in rooms, see each other's messages and presence; a direct
message reaches only its target; hostile text stays text; a gateway restart shows
"reconnecting" and then "online", and the page rejoins its rooms; unread counts; gateway errors
shown; the seed tutorials' message format from a raw WebSocket client; phone-sized layout; a
screenshot of a conversation for people to look at.
"""

import asyncio
import json
import re
import shutil
import time
from pathlib import Path

import websockets

from chatpage import By, Keys
from gwtest import Gateway, make_token

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PUBLIC = REPO / "public"
OUT = REPO / "build" / "test-output" / "browser"
TIME_RE = re.compile(r"^\d{1,2}:\d{2}")


# ---------------------------------------------------------------------------------------------
# the files themselves


HTML_SINKS = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|"
                        r"createContextualFragment|srcdoc|eval\s*\(|new\s+Function)\b")
URL_IN_SOURCE = re.compile(r"(?:https?:)?//[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+[^\s\"'<>)`]*")
SVG_NS = "http://www.w3.org/2000/svg"


def test_page_files_are_local_and_never_parse_user_html():
    """No CDN, no external URL, nothing loaded from elsewhere; no HTML sinks in the scripts."""
    files = sorted(p for p in PUBLIC.iterdir() if p.suffix in (".html", ".js", ".css", ".svg"))
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in files}
    for path in files:
        text = path.read_text("utf-8")
        urls = set(URL_IN_SOURCE.findall(text)) - {SVG_NS}
        assert not urls, f"{path.name} names outside addresses: {urls}"
        if path.suffix == ".js":
            assert not HTML_SINKS.search(text), f"{path.name}: {HTML_SINKS.search(text)[0]}"
    index = (PUBLIC / "index.html").read_text("utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", index), "inline script in index.html"
    assert not re.search(r"\son[a-z]+\s*=", index), "inline event handler in index.html"
    for ref in re.findall(r'(?:src|href)="([^"]+)"', index):
        assert (PUBLIC / ref).is_file(), f"index.html refers to {ref}, not in public/"


# ---------------------------------------------------------------------------------------------
# in the browser


def test_page_loads_from_its_gateway_alone(open_page, cluster, uniq):
    page = open_page(cluster.gw_a, f"Ada {uniq}", join=False)
    assert page.d.find_element(By.ID, "join-screen").is_displayed()
    assert page.d.title == "chatbroker"
    # A name is required; the page says so and does not connect.
    page.d.find_element(By.ID, "join-name").send_keys(Keys.ENTER)
    error = page.d.find_element(By.ID, "join-error")
    page.wait(lambda d: error.is_displayed(), "the missing-name message")
    assert "name" in error.text.lower()
    assert page.js("return window.chatbroker.socket.state") == "idle"
    # The avatar preview follows what is typed: initials, then an identicon for an email.
    page.d.find_element(By.ID, "join-name").send_keys("Ada Lovelace")
    page.wait(lambda d: page.js("return document.querySelector('#join-avatar .avatar')"
                                ".textContent") == "AL", "initials in the preview")
    page.d.find_element(By.ID, "join-email").send_keys("ada@example.org")
    page.wait(lambda d: page.js("return !!document.querySelector('#join-avatar svg rect')"),
              "an identicon in the preview")
    page.d.find_element(By.ID, "join-email").send_keys(Keys.ENTER)
    page.wait_state("online")
    page.wait_room_joined("lobby")
    assert page.gateway() == "gw-a"
    assert page.active_title() == "lobby"
    assert page.d.find_element(By.ID, "me-name").text == "Ada Lovelace"
    # Everything the page loaded came from this gateway.
    origin = f"http://127.0.0.1:{cluster.gw_a.port}"
    loaded = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith(origin + "/") for u in loaded), loaded
    assert {u.rsplit("/", 1)[1] for u in loaded} >= {"app.js", "style.css", "emoji.js",
                                                    "avatar.js", "chat-socket.js"}
    page.collect_logs()
    problems = [e for e in page.console if e["level"] in ("SEVERE", "WARNING")]
    assert not problems, problems


def test_two_gateways_share_a_room(open_page, cluster, uniq):
    ada_name, bob_name, room = f"Ada {uniq}", f"Bob {uniq}", f"rust-{uniq}"
    ada = open_page(cluster.gw_a, ada_name, "ada@example.org")
    bob = open_page(cluster.gw_b, bob_name)
    assert (ada.gateway(), bob.gateway()) == ("gw-a", "gw-b")

    ada.join_room(room)
    bob.join_room(room)
    # presence: the join reaches the other gateway's page, and the roster holds both
    ada.wait_sys(f"{bob_name} joined")
    ada.wait_member(bob_name)
    bob.wait_member(ada_name)
    assert ada.d.find_element(By.ID, "conv-sub").text == "2 people here"

    ada.send("hello from gw-a :robot:")
    got = bob.wait_message("hello from gw-a 🤖")
    assert got["author"] == ada_name and not got["mine"] and got["identicon"]
    assert TIME_RE.match(got["time"]) and got["datetime"], got
    assert ada.wait_message("hello from gw-a 🤖")["mine"]
    bob.send("hi Ada :smile: :+1: :heart: :tada: :no_such_code:")
    got = ada.wait_message("hi Ada 😄 👍 ❤️ 🎉 :no_such_code:")
    assert got["author"] == bob_name and not got["identicon"]
    ada.send("and a third")
    bob.wait_message("and a third")
    assert [m["text"] for m in ada.messages()] == [m["text"] for m in bob.messages()]

    # leave: the other page sees it; the room stays listed, greyed, and can be joined again
    bob.d.find_element(By.ID, "join-leave").click()
    ada.wait_sys(f"{bob_name} left")
    ada.wait_member(bob_name, present=False)
    bob.wait(lambda d: not bob.room_joined(room), "the leave")
    assert "left" in bob.room_item(room).get_attribute("class").split()
    assert bob.composer().get_attribute("disabled") is not None
    bob.d.find_element(By.ID, "join-leave").click()
    bob.wait_room_joined(room)
    ada.wait_member(bob_name)
    bob.send("back")
    ada.wait_message("back")


def test_direct_message_reaches_only_its_target(open_page, cluster, uniq):
    ada_name, bob_name, carol_name = f"Ada {uniq}", f"Bob {uniq}", f"Carol {uniq}"
    ada = open_page(cluster.gw_a, ada_name)
    bob = open_page(cluster.gw_b, bob_name)
    carol = open_page(cluster.gw_a, carol_name)
    ada.wait_member(bob_name)
    ada.wait_member(carol_name)

    secret = f"psst {uniq}: the launch is on Friday"
    ada.open_dm_with(bob_name)
    assert ada.d.find_element(By.ID, "conv-sub").text == "Direct message · online"
    ada.send(secret)
    assert ada.wait_message(secret)["mine"]  # shown locally: the sender gets no copy

    bob.wait(lambda d: (ada_name, 1) in bob.dm_threads(), f"a thread from {ada_name}")
    assert bob.active_title() == "lobby"
    bob.open_dm_thread(ada_name)
    got = bob.wait_message(secret)
    assert got["author"] == ada_name
    assert bob.dm_threads() == [(ada_name, 0)]
    bob.send(f"got it {uniq}")
    assert ada.wait_message(f"got it {uniq}")["author"] == bob_name

    time.sleep(1.0)  # a stray copy would have arrived by now
    assert [m["text"] for m in ada.messages()].count(secret) == 1
    assert secret not in carol.js("return document.getElementById('app').textContent")
    assert carol.dm_threads() == []
    assert not any(secret in payload for payload in carol.collect_logs()), "Carol's socket got it"
    # on the wire: Bob's socket got exactly one direct; Ada's none (she shows her own)
    directs = [f for f in bob.frames_received() if f.get("type") == "direct"]
    assert [(f["message"], f["username"]) for f in directs] == [(secret, ada_name)]
    assert not any(f.get("type") == "direct" and f.get("message") == secret
                   for f in ada.frames_received())


def test_hostile_text_renders_as_text(open_page, cluster, uniq):
    evil = "<img src=x onerror=alert(2)>"
    room = f"xss-{uniq}"
    ada = open_page(cluster.gw_a, f"Ada {uniq}")
    eve = open_page(cluster.gw_b, evil)
    ada.join_room(room)
    eve.join_room(room)
    ada.wait_member(evil)
    payloads = [
        "<img src=x onerror=alert(1)>",
        "<script>window.__xss = 1</script>",
        '<svg onload="window.__xss = 2"><b>bold</b>&amp;&lt;',
        "javascript:alert(3)",
        "see https://example.org/a?b=<i>x</i>",
    ]
    for text in payloads:
        eve.send(text)
    for text in payloads:
        got = ada.wait_message(text)
        assert got["author"] == evil
    ada.wait_sys(f"{evil} joined")
    # Nothing the people typed became an element; only the one http(s) URL became a link.
    injected = ("return document.querySelectorAll(':is(#messages, #members, #room-list, #dm-list,"
                " .main-head, #toasts) :is(img, script, b, i, [onload], [onerror])').length")
    links = "return [...document.querySelectorAll('#messages a')].map(a => a.href)"
    for page in (ada, eve):
        assert page.js(injected) == 0
        assert page.js(links) == ["https://example.org/a?b="]
    ada.open_dm_with(evil)
    assert ada.active_title() == evil
    assert ada.js(injected) == 0
    for page in (ada, eve):
        assert not page.alert_present(), f"[{page.label}] an alert fired"
        assert page.js("return window.__xss") is None


def test_gateway_restart_reconnects_and_rejoins(open_page, cluster, uniq):
    gw = cluster.gw_a
    ada_name, bob_name, room = f"Ada {uniq}", f"Bob {uniq}", f"ops-{uniq}"
    ada = open_page(gw, ada_name)
    bob = open_page(cluster.gw_b, bob_name)
    ada.join_room(room)
    bob.join_room(room)
    ada.wait_member(bob_name)
    bob.wait_member(ada_name)
    old_id = ada.me_id()

    problems = gw.stop(timeout=15)  # SIGTERM: the gateway drains, closing every session
    assert problems == [], problems
    ada.wait_state("reconnecting")
    banner = ada.d.find_element(By.ID, "banner")
    assert banner.is_displayed() and "Reconnecting" in banner.text
    bob.wait_member(ada_name, present=False)
    # while offline, a message is kept in the composer, and the page says why
    ada.composer().send_keys("are we back?")
    ada.composer().send_keys(Keys.ENTER)
    ada.wait(lambda d: any(t["title"] == "You are offline" for t in ada.toasts()), "offline note")
    assert ada.composer().get_attribute("value") == "are we back?"
    time.sleep(1.0)  # attempts meet a closed port meanwhile
    assert ada.state() == "reconnecting"

    gw.start()  # the same port
    ada.wait_state("online", timeout=20)
    assert not banner.is_displayed()
    assert ada.me_id() != old_id
    ada.wait_room_joined(room)
    ada.wait_member(bob_name)
    bob.wait_member(ada_name)
    ada.send("")  # Enter sends what the composer kept
    bob.wait_message("are we back?")
    bob.send(f"yes {uniq}")
    assert ada.wait_message(f"yes {uniq}")["author"] == bob_name


def test_unread_counts_for_rooms_not_in_view(open_page, cluster, uniq):
    ada_name, bob_name, room = f"Ada {uniq}", f"Bob {uniq}", f"news-{uniq}"
    ada = open_page(cluster.gw_a, ada_name)
    bob = open_page(cluster.gw_b, bob_name)
    ada.join_room(room)
    bob.join_room(room)
    ada.wait_member(bob_name)
    ada.select_room("lobby")
    assert ada.unread(room) == 0
    badge = f'#room-list li[data-room="{room}"] .badge'
    assert not ada.badge_visible(badge)

    for i in range(3):
        bob.send(f"update {i} {uniq}")
    ada.wait(lambda d: ada.unread(room) == 3, f"3 unread in #{room} (now {ada.unread(room)})")
    assert ada.badge_visible(badge)
    assert ada.d.title.startswith("(3) ")
    # messages in the room in view are read
    bob.select_room("lobby")
    bob.send(f"in the lobby {uniq}")
    ada.wait_message(f"in the lobby {uniq}")
    assert ada.unread("lobby") == 0 and ada.unread(room) == 3
    ada.select_room(room)
    assert ada.unread(room) == 0 and not ada.badge_visible(badge)
    for i in range(3):
        ada.wait_message(f"update {i} {uniq}")
    assert not ada.d.title.startswith("(")
    # direct messages count too
    bob.wait_member(ada_name)
    bob.open_dm_with(ada_name)
    bob.send("ping")
    bob.send("ping again")
    ada.wait(lambda d: ada.dm_threads() == [(bob_name, 2)], "2 unread from Bob")


def test_gateway_errors_are_shown(open_page, cluster, uniq):
    ada = open_page(cluster.gw_a, f"Ada {uniq}")
    box = ada.d.find_element(By.ID, "new-room")
    box.send_keys("bad room")
    box.send_keys(Keys.ENTER)
    toast = ada.wait_toast("bad_room")
    assert "toast-error" in toast["kind"]
    assert "room names are 1 to 64" in toast["text"].lower(), toast  # the gateway's reason
    assert ada.room_item("bad room") is None
    assert box.get_attribute("value") == "bad room"  # kept, to be corrected
    assert ada.active_title() == "lobby"

    too_long = "x" * (cluster.max_text + 1)
    ada.send_long(too_long)
    toast = ada.wait_toast("too_large")
    assert "toast-error" in toast["kind"]
    assert ada.composer().get_attribute("value") == too_long  # not lost
    time.sleep(0.3)
    assert not any(m["text"] == too_long for m in ada.messages())
    longest = "y" * cluster.max_text
    ada.send_long(longest)
    assert ada.wait_message(longest)["mine"]


def test_seed_tutorial_format_reaches_the_lobby(open_page, cluster, uniq):
    ada = open_page(cluster.gw_a, f"Ada {uniq}")
    text = f"hello from the tutorial page {uniq}"
    sender = f"ann-{uniq}"

    async def tutorial_client():
        url = f"ws://127.0.0.1:{cluster.gw_b.port}/ws"
        async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert welcome["type"] == "welcome"
            await ws.send(json.dumps({"email": "ann@example.org", "username": sender,
                                      "message": text}))
            for _ in range(100):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if frame.get("type") == "message" and frame.get("message") == text:
                    return frame
            raise AssertionError("the tutorial client never got its message back")

    echo = asyncio.run(asyncio.wait_for(tutorial_client(), 20))
    assert (echo["room"], echo["username"], echo["email"]) == ("lobby", sender, "ann@example.org")
    got = ada.wait_message(text)
    assert got["author"] == sender and got["identicon"] and not got["mine"]


def test_phone_sized_screen(open_page, cluster, uniq):
    ada = open_page(cluster.gw_a, f"Ada {uniq}", width=390, height=844, mobile=True)
    rect = "return document.getElementById(arguments[0]).getBoundingClientRect().toJSON()"
    assert ada.js(rect, "sidebar")["right"] <= 0, "the rooms drawer starts closed"
    assert ada.js("return document.documentElement.scrollWidth") <= 390
    menu = ada.d.find_element(By.ID, "open-sidebar")
    assert menu.is_displayed()
    composer = ada.js(rect, "composer-text")
    assert 0 < composer["bottom"] <= 844 and composer["width"] > 250
    ada.send(f"hello from a phone {uniq} :iphone:")
    ada.wait_message(f"hello from a phone {uniq} 📱")

    menu.click()
    ada.wait(lambda d: ada.js(rect, "sidebar")["left"] >= 0, "the rooms drawer to open")
    ada.join_room(f"mobile-{uniq}")  # the create box is in the drawer; joining closes it
    ada.wait(lambda d: ada.js(rect, "sidebar")["right"] <= 0, "the drawer to close")
    ada.send("Typing on a phone :iphone: works, and Enter sends")
    ada.wait_message("Typing on a phone 📱 works, and Enter sends")
    assert ada.js("return document.documentElement.scrollWidth") <= 390
    ada.screenshot(OUT / "phone.png")
    ada.d.find_element(By.ID, "toggle-members").click()
    ada.wait(lambda d: ada.js(rect, "members-panel")["right"] <= 390 + 1, "the people drawer")
    assert [n for _, n in ada.members()] == [f"Ada {uniq}"]
    ada.d.find_element(By.ID, "close-members").click()
    ada.wait(lambda d: ada.js(rect, "members-panel")["left"] >= 390, "the people drawer to close")


def test_screenshot_of_a_conversation(open_page, cluster):
    """build/test-output/browser/conversation.png (and -dark.png), copied to
    tests/browser/screenshot.png for the README."""
    ada = open_page(cluster.gw_a, "Ada Lovelace", "ada@example.org")
    grace = open_page(cluster.gw_b, "Grace Hopper")
    alan = open_page(cluster.gw_b, "Alan Turing", "alan@example.org")
    for page in (ada, grace, alan):
        page.join_room("design")
        page.join_room("launch")
    ada.wait_member("Grace Hopper")
    ada.wait_member("Alan Turing")
    script = [
        (grace, "Morning! Is the new gateway build out on both nodes?"),
        (ada, "Yes :rocket: gw-a and gw-b are live, both talking through Redis."),
        (ada, "Rooms are pub/sub channels, so any number of gateways make one chat."),
        (alan, "I'm on gw-b and I see you on gw-a. Latency is well under a millisecond :zap:"),
        (grace, "Lovely. And the page needs nothing from the internet?"),
        (ada, "Nothing at all: no CDN, avatars drawn locally, emoji from a table :sparkles:"),
        (grace, ":tada:"),
        (alan, "Release notes are at https://example.org/chatbroker/releases"),
    ]
    for page, text in script:
        page.send(text)
        time.sleep(0.15)
    ada.wait_message("Release notes are at https://example.org/chatbroker/releases")
    grace.select_room("design")
    grace.send("Pushed the new colours, have a look when you can")
    grace.wait_member("Ada Lovelace")
    grace.open_dm_with("Ada Lovelace")
    grace.send("Coffee after the launch? :coffee:")
    ada.wait(lambda d: ada.unread("design") == 1 and ada.dm_threads() == [("Grace Hopper", 1)],
             "the unread badges")
    ada.js("document.getElementById('composer-text').blur()")
    ada.js("document.querySelectorAll('#toasts .toast').forEach(t => t.remove())")
    time.sleep(0.3)
    shot = ada.screenshot(OUT / "conversation.png")
    shutil.copyfile(shot, HERE / "screenshot.png")
    ada.browser.color_scheme("dark")
    time.sleep(0.3)
    ada.screenshot(OUT / "conversation-dark.png")
    assert (HERE / "screenshot.png").stat().st_size > 10000


# ---------------------------------------------------------------------------------------------
# connect tokens


def _token(secret, sub, ttl=3600):
    return make_token(secret, {"sub": sub, "exp": int(time.time()) + ttl})


def test_connect_token_from_the_address(open_page, cluster, tmp_path, uniq):
    """A gateway that wants tokens: the page takes #token= from its address, offers it as a
    subprotocol entry, and clears it from the address bar; a forged token never gets on."""
    secret = "browser-test-secret-0123456789abcdef"
    g = Gateway(tmp_path / "gw-tok", args=["--token-secret", secret, "--gateway-id", "gw-tok",
                                           "--token-leeway", "0s", "--close-timeout", "1s",
                                           "--drain-timeout", "2s"],
                public_dir=PUBLIC, name="gw-tok", redis_url=cluster.redis.url)
    g.start()
    try:
        token = _token(secret, f"ada-{uniq}")
        page = open_page(g, f"Ada {uniq}", path=f"#token={token}")
        assert page.gateway() == "gw-tok"
        assert page.js("return location.hash + location.search") == ""
        assert page.js("return window.chatbroker.socket.ws.protocol") == f"token.{token}"
        eve = open_page(g, f"Eve {uniq}", join=False,
                        path="#token=" + _token("another-secret-0123456789abcdefgh", "eve"))
        eve.join(f"Eve {uniq}", wait_online=False)
        time.sleep(2)
        assert eve.state() != "online"
        assert "401" in g.log_text() and "token signature does not match" in g.log_text()
        # A token that runs out: the gateway closes with 4001 and the page says so rather
        # than retrying a token that would only be refused.
        cy = open_page(g, f"Cy {uniq}", path="#token=" + _token(secret, f"cy-{uniq}", ttl=4))
        cy.wait_state("expired", timeout=15)
        assert cy.d.find_element(By.ID, "conn-state").text.strip() == "Signed out"
        assert "expired" in cy.js("return document.getElementById('banner').textContent")
        time.sleep(1.5)
        assert cy.state() == "expired"
    finally:
        problems = g.stop(timeout=10)
    assert not problems, problems
