"""The chat protocol (proto/PROTOCOL.md) end to end: real redis-server, two gateways.

Most tests share one redis-server and two gateways (gw-a, gw-b) for the module; tests that
need other flags (rate limits, output cap) or hurt Redis (kill, restart, passwords) start
their own. Every process is stopped by PID and checked (crash, sanitizer report, exit status).
"""

import asyncio
import json
import time
import uuid
from types import SimpleNamespace

import pytest

from chattest import (ID_RE, MSG_ID_RE, Clients, Monitor, async_wait_healthz, healthz,
                      is_direct, is_error, is_message, is_presence, monitor_args, parse_frames,
                      run, settle, wait_accepting, wait_healthz)
from gwtest import Gateway, sanitizer_report, ws_connect
from redistest import RedisServer

BASE_ARGS = ["--close-timeout", "1s", "--drain-timeout", "3s"]
MAX_TEXT = 4096
MAX_ROOMS = 4
# The shared gateways: rate limits out of the way (bad-input tests send many frames).
SHARED_ARGS = ["--rate", "100000", "--burst", "100000", "--max-text", "4KiB",
               "--max-rooms", str(MAX_ROOMS)]

MESSAGE_KEYS = {"type", "room", "id", "from", "username", "message", "ts"}
DIRECT_KEYS = {"type", "to", "id", "from", "username", "message", "ts"}
PRESENCE_KEYS = {"type", "room", "event", "client", "username"}


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def chat_redis(tmp_path_factory):
    r = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cluster(chat_redis, gateway_bin, site, tmp_path_factory):
    redis = chat_redis
    gws = []
    try:
        for name in ("gw-a", "gw-b"):
            g = Gateway(tmp_path_factory.mktemp(name),
                        args=BASE_ARGS + ["--redis", redis.url, "--gateway-id", name]
                        + SHARED_ARGS, public_dir=site["public"], name=name)
            gws.append(g)
            g.start()
        for g in gws:
            wait_healthz(g.port, 200, 10)
    except BaseException:
        for g in gws:
            g.stop(timeout=10)
        raise
    yield SimpleNamespace(a=gws[0], b=gws[1], redis=redis)
    problems = []
    for g in gws:
        problems += [f"{g.name}: {p}\n{g.log_tail()}" for p in g.stop(timeout=10)]
    if problems:
        pytest.fail("shared gateways at module end:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def chat(cluster, request):
    """The shared cluster; after the test both gateways must run, with no sanitizer report."""
    request.node._gateways = [cluster.a, cluster.b]  # conftest attaches their logs on failure
    for g in (cluster.a, cluster.b):
        g.new_log()
    yield cluster
    problems = []
    for g in (cluster.a, cluster.b):
        if not g.alive():
            problems.append(f"{g.name} is not running: {g.exit_problems()}\n{g.log_tail()}")
        found = sanitizer_report(g.new_log())
        if found:
            problems.append(f"{g.name}: sanitizer report {found}\n{g.log_tail()}")
    if problems:
        pytest.fail("after the test:\n" + "\n".join(problems), pytrace=False)


def start_pair(make_gateway, redis_url, *extra, names=("gw-a", "gw-b"), healthy=True):
    gws = [make_gateway(*BASE_ARGS, "--redis", redis_url, "--gateway-id", n, *extra)
           for n in names]
    if healthy:
        for g in gws:
            wait_healthz(g.port, 200, 10)
    return gws


def check_message(m, room, sender, username, text, email=None, t0=None, t1=None):
    keys = MESSAGE_KEYS | ({"email"} if email else set())
    assert set(m) == keys, m
    assert m["type"] == "message" and m["room"] == room, m
    assert m["from"] == sender.id and m["username"] == username and m["message"] == text, m
    assert m.get("email") == email, m
    assert isinstance(m["id"], str) and MSG_ID_RE.match(m["id"]), m
    assert type(m["ts"]) is int, m
    if t0 is not None:
        assert t0 - 2000 <= m["ts"] <= t1 + 2000, (m, t0, t1)


# ---------------------------------------------------------------------------------------------
# 1. a room message crosses gateways


def test_room_message_crosses_gateways(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a", hello="ann", email="ann@example.org",
                              rooms=["t1-room"])
            b = await cs.open(chat.b.port, "b", rooms=["t1-room"])
            assert a.welcome["gateway"] == "gw-a" and b.welcome["gateway"] == "gw-b"
            assert ID_RE.match(a.id) and ID_RE.match(b.id) and a.id != b.id

            t0 = now_ms()
            await a.say("t1-room", "hello from A \u2713 \U0001f680")
            got_b = await b.take(is_message("t1-room"), what="a's message on gw-b")
            got_a = await a.take(is_message("t1-room"), what="a's own message back")
            t1 = now_ms()
            check_message(got_b, "t1-room", a, "ann", "hello from A \u2713 \U0001f680",
                          email="ann@example.org", t0=t0, t1=t1)
            assert got_a == got_b
            # The same bytes to everyone: the frame is forwarded, not re-encoded.
            raw_a = [r for r in a.raw if got_a["id"] in r]
            raw_b = [r for r in b.raw if got_b["id"] in r]
            assert raw_a == raw_b and len(raw_a) == 1

            # The other way, from a session with no hello and no email.
            t0 = now_ms()
            await b.say("t1-room", "reply from B")
            back = await a.take(is_message("t1-room", "reply from B"), what="b's reply on gw-a")
            t1 = now_ms()
            check_message(back, "t1-room", b, "guest-" + b.id[:6], "reply from B", t0=t0, t1=t1)
            mine = await b.take(is_message("t1-room", "reply from B"), what="b's own reply")
            assert mine == back
            assert back["id"] != got_a["id"]

            await settle(0.3)
            extra = [f for c in (a, b) for f in c.matching(is_message())]
            assert not extra, f"unexpected extra messages: {extra}"

    run(body())


# ---------------------------------------------------------------------------------------------
# 2. rooms are isolated


def test_rooms_are_isolated(chat):
    async def body():
        async with Clients() as cs:
            members = {
                "iso-r1": [await cs.open(chat.a.port, "a1", rooms=["iso-r1"]),
                           await cs.open(chat.b.port, "b1", rooms=["iso-r1"])],
                "iso-r2": [await cs.open(chat.a.port, "a2", rooms=["iso-r2"]),
                           await cs.open(chat.b.port, "b2", rooms=["iso-r2"])],
            }
            for room, cl in members.items():
                for c in cl:
                    for i in range(3):
                        await c.say(room, f"{room}/{c.name}/{i}")
            for room, cl in members.items():
                want = {f"{room}/{c.name}/{i}" for c in cl for i in range(3)}
                for c in cl:
                    await c.wait_until(
                        lambda c=c, room=room, want=want: want <= {
                            f.get("message") for f in c.all if is_message(room)(f)},
                        5, f"all {room} messages at {c.name}")
            await settle(0.4)
            for room, cl in members.items():
                other = "iso-r2" if room == "iso-r1" else "iso-r1"
                want = sorted(f"{room}/{c.name}/{i}" for c in cl for i in range(3))
                for c in cl:
                    leaked = [f for f in c.all if f.get("room") == other
                              or other in str(f.get("message", ""))]
                    assert not leaked, f"{c.name} in {room} got {other} traffic: {leaked}"
                    got = sorted(f["message"] for f in c.all if is_message(room)(f))
                    assert got == want, f"{c.name}: {got}"

    run(body())


# ---------------------------------------------------------------------------------------------
# 3. direct messages


def test_direct_reaches_only_its_target(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a", hello="ann", email="ann@example.org")
            d = await cs.open(chat.a.port, "d")  # a third party on the sender's gateway
            b = await cs.open(chat.b.port, "b", hello="bob")  # the target
            c = await cs.open(chat.b.port, "c")  # a third party on the target's gateway

            t0 = now_ms()
            await a.direct(b.id, "psst b")
            m = await b.take(is_direct("psst b"), what="the direct at b")
            t1 = now_ms()
            assert set(m) == DIRECT_KEYS | {"email"}, m
            assert (m["type"], m["to"], m["from"], m["username"], m["email"]) == (
                "direct", b.id, a.id, "ann", "ann@example.org"), m
            assert MSG_ID_RE.match(m["id"]) and type(m["ts"]) is int, m
            assert t0 - 2000 <= m["ts"] <= t1 + 2000

            await b.direct(a.id, "psst back")  # the other way across
            m2 = await a.take(is_direct("psst back"), what="the reply at a")
            assert (m2["to"], m2["from"], m2["username"]) == (a.id, b.id, "bob")
            assert "email" not in m2

            await a.direct(d.id, "same gateway")
            m3 = await d.take(is_direct("same gateway"), what="the direct at d")
            assert m3["to"] == d.id and m3["from"] == a.id

            await settle(0.5)
            directs = {x.name: [f.get("message") for f in x.all if f.get("type") == "direct"]
                       for x in (a, b, c, d)}
            assert directs == {"a": ["psst back"], "b": ["psst b"], "c": [],
                               "d": ["same gateway"]}
            assert not [f for x in (a, b, c, d) for f in x.all if f.get("type") == "error"]

            # An id nobody holds: unknown_target, with the id as ref.
            zero = "0" * 32
            await a.direct(zero, "anyone?")
            e = await a.take(is_error(), what="an error for an unknown target")
            assert (e["code"], e.get("ref")) == ("unknown_target", zero), e
            assert isinstance(e.get("reason"), str) and e["reason"], e

            # Ids that are not ids: bad_target.
            for bad in ("xyz", "A" * 32, b.id.upper(), "0" * 31, "0" * 33, b.id[:-1] + "g",
                        " " + b.id[1:], ""):
                await a.direct(bad, "malformed")
                e = await a.take(is_error(), what=f"an error for to={bad!r}")
                assert e["code"] == "bad_target", (bad, e)

            # A client that has left is unknown too (its gateway unsubscribes it on close).
            gone = c.id
            await c.close()
            for attempt in range(10):
                await a.direct(gone, "are you there?")
                try:
                    e = await a.take(is_error(), 0.5, "unknown_target for a closed client")
                    break
                except AssertionError:
                    if attempt == 9:
                        raise
            assert (e["code"], e.get("ref")) == ("unknown_target", gone), e

            # The sender's session is fine after all that.
            await a.direct(b.id, "still here")
            await b.take(is_direct("still here"), what="a direct after the errors")
            await settle(0.2)
            assert not [f for f in b.all if f.get("type") == "direct"
                        and f.get("message") in ("malformed", "anyone?")]

    run(body())


# ---------------------------------------------------------------------------------------------
# 4. per-sender order and completeness under load


def test_order_and_completeness_under_load(chat):
    n_per_sender = 300
    room = "load-room"

    async def body():
        async with Clients() as cs:
            senders = [await cs.open(chat.a.port if k != 1 else chat.b.port, f"s{k}",
                                     rooms=[room]) for k in range(3)]
            receivers = [await cs.open(p, f"r{k}", rooms=[room]) for k, p in
                         enumerate([chat.a.port, chat.a.port, chat.b.port, chat.b.port])]
            total = 3 * n_per_sender

            async def flood(s, k):
                for i in range(n_per_sender):
                    await s.say(room, f"{k}:{i}")

            t0 = time.monotonic()
            await asyncio.gather(*(flood(s, k) for k, s in enumerate(senders)))

            def count(c):
                return sum(1 for f in c.all if f.get("type") == "message"
                           and f.get("room") == room)

            everyone = receivers + senders
            for c in everyone:
                await c.wait_until(lambda c=c: count(c) >= total, 25,
                                   f"{total} messages at {c.name} (has {count(c)})")
            took = time.monotonic() - t0
            await settle(0.3)
            by_id = {s.id: k for k, s in enumerate(senders)}
            orders = []
            for c in everyone:
                msgs = [f for f in c.all if f.get("type") == "message" and f.get("room") == room]
                assert len(msgs) == total, f"{c.name}: {len(msgs)} messages, want {total}"
                ids = [m["id"] for m in msgs]
                assert len(set(ids)) == total, f"{c.name}: duplicate message ids"
                texts = [m["message"] for m in msgs]
                assert len(set(texts)) == total, f"{c.name}: duplicate messages"
                for k in range(3):
                    seq = [int(m["message"].split(":")[1]) for m in msgs
                           if m["from"] == senders[k].id]
                    assert seq == list(range(n_per_sender)), (
                        f"{c.name}: sender s{k} out of order or incomplete: "
                        f"{[x for x in seq[:20]]}... ({len(seq)})")
                for m in msgs:
                    assert m["message"].split(":")[0] == str(by_id[m["from"]]), m
                orders.append(ids)
            # "in one order for all": one Redis channel, one order.
            for c, ids in zip(everyone[1:], orders[1:]):
                assert ids == orders[0], f"{c.name} saw another order than {everyone[0].name}"
            assert took < 25

    run(body(), timeout=50)


# ---------------------------------------------------------------------------------------------
# 5. the seed tutorials' format


def test_seed_format_goes_to_lobby(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a")
            b = await cs.open(chat.b.port, "b")
            t0 = now_ms()
            await a.send({"email": "seed@example.org", "username": "seedy",
                          "message": "seed hello"})
            m = await b.take(is_message("lobby", "seed hello"), what="the seed message at b")
            t1 = now_ms()
            check_message(m, "lobby", a, "seedy", "seed hello", email="seed@example.org",
                          t0=t0, t1=t1)
            assert await a.take(is_message("lobby", "seed hello")) == m

            # The identity was for that one message: the session is still a guest.
            await a.say("lobby", "typed after seed")
            m = await b.take(is_message("lobby", "typed after seed"))
            check_message(m, "lobby", a, "guest-" + a.id[:6], "typed after seed")

            # Only a message: the session's own identity.
            await a.send({"message": "bare seed"})
            m = await b.take(is_message("lobby", "bare seed"))
            check_message(m, "lobby", a, "guest-" + a.id[:6], "bare seed")

            # Unknown fields (the page's own) are ignored.
            await a.send({"username": "pageuser", "message": "with extras", "color": "red",
                          "n": 5})
            m = await b.take(is_message("lobby", "with extras"))
            check_message(m, "lobby", a, "pageuser", "with extras")

            # After hello, a seed message without identity carries the hello name.
            await a.hello("ann2")
            await a.send({"message": "seed after hello"})
            m = await b.take(is_message("lobby", "seed after hello"))
            check_message(m, "lobby", a, "ann2", "seed after hello")

            # A seed message's identity is checked like hello's.
            await a.send({"username": "u" * 65, "message": "x"})
            e = await a.take(is_error())
            assert e["code"] == "too_large", e
            await a.send({"username": 7, "message": "x"})
            e = await a.take(is_error())
            assert e["code"] == "bad_message", e

    run(body())


# ---------------------------------------------------------------------------------------------
# 6. presence


def test_presence(chat):
    room = "pres-room"

    async def body():
        async with Clients() as cs:
            x = await cs.open(chat.a.port, "x", hello="xavier", rooms=[room])
            y = await cs.open(chat.b.port, "y", hello="yvonne", rooms=[room])
            # x hears y's join with y's hello name
            p = await x.take(is_presence(room, "join", y.id), what="y's join at x")
            assert p["username"] == "yvonne" and set(p) == PRESENCE_KEYS, p

            c = await cs.open(chat.a.port, "c", lobby=False)
            assert c.all[0] is c.welcome
            assert set(c.welcome) == {"type", "id", "gateway", "rooms"}, c.welcome
            assert c.welcome["rooms"] == ["lobby"] and c.welcome["gateway"] == "gw-a"
            assert ID_RE.match(c.id)
            p = await c.next(what="c's own lobby join")
            assert p == {"type": "presence", "room": "lobby", "event": "join", "client": c.id,
                         "username": "guest-" + c.id[:6]}, p
            for other in (x, y):
                q = await other.take(is_presence("lobby", "join", c.id),
                                     what=f"c's lobby join at {other.name}")
                assert q == p

            await c.hello("carol", "carol@example.org")
            joined = await c.join(room)
            want = {"type": "presence", "room": room, "event": "join", "client": c.id,
                    "username": "carol", "email": "carol@example.org"}
            assert joined == want
            for other in (x, y):
                assert await other.take(is_presence(room, "join", c.id),
                                        what=f"c's join at {other.name}") == want

            # c hears the room now
            await y.say(room, "welcome carol")
            await c.take(is_message(room, "welcome carol"), what="room traffic at c")

            await c.send({"type": "leave", "room": room})
            left = await c.take(is_presence(room, "leave", c.id), what="c's own leave")
            assert left == dict(want, event="leave")
            for other in (x, y):
                assert await other.take(is_presence(room, "leave", c.id),
                                        what=f"c's leave at {other.name}") == left

            # after leaving, c no longer hears the room
            await y.say(room, "after carol left")
            await x.take(is_message(room, "after carol left"))
            await settle(0.3)
            assert not c.matching(is_message(room, "after carol left"))

            # join again, then end the session: each of its rooms gets a leave
            await c.join(room)
            for other in (x, y):
                await other.take(is_presence(room, "join", c.id), what="c's second join")
            await cs.close(c)
            for other in (x, y):
                for r in ("lobby", room):
                    q = await other.take(is_presence(r, "leave", c.id),
                                         what=f"c's {r} leave at {other.name} after close")
                    assert q == {"type": "presence", "room": r, "event": "leave",
                                 "client": c.id, "username": "carol",
                                 "email": "carol@example.org"}, q
            await settle(0.2)
            assert not [f for o in (x, y) for f in o.inbox
                        if f.get("type") == "presence" and f.get("client") == c.id]

    run(body())


# ---------------------------------------------------------------------------------------------
# 7. bad input: an error, and the session lives on


def obj(**kw):
    return json.dumps(kw)


DEEP = 5000
BAD_INPUTS = [
    ("not_json", "hello there", "bad_json"),
    ("empty_text", "", "bad_json"),
    ("trailing_garbage", obj(type="message", room="lobby", message="x") + " x", "bad_json"),
    ("two_objects", obj(type="message", room="lobby", message="x") + "{}", "bad_json"),
    ("truncated", '{"type":"message","room":"lobby"', "bad_json"),
    ("single_quotes", "{'type':'message','room':'lobby','message':'x'}", "bad_json"),
    ("lone_surrogate", '{"type":"message","room":"lobby","message":"\\ud800"}', "bad_json"),
    ("array", "[" + obj(type="message", room="lobby", message="x") + "]", "bad_message"),
    ("number", "42", "bad_message"),
    ("string", '"message"', "bad_message"),
    ("null", "null", "bad_message"),
    ("true", "true", "bad_message"),
    ("type_number", '{"type":5,"room":"lobby","message":"x"}', "bad_message"),
    ("type_null", '{"type":null,"room":"lobby","message":"x"}', "bad_message"),
    ("room_number", '{"type":"message","room":5,"message":"x"}', "bad_message"),
    ("room_array", '{"type":"join","room":["lobby"]}', "bad_message"),
    ("message_object", '{"type":"message","room":"lobby","message":{"a":1}}', "bad_message"),
    ("message_null", '{"type":"message","room":"lobby","message":null}', "bad_message"),
    ("message_number", '{"type":"message","room":"lobby","message":1.5}', "bad_message"),
    ("username_array", '{"type":"hello","username":["ann"]}', "bad_message"),
    ("email_number", '{"type":"hello","username":"ann","email":1}', "bad_message"),
    ("to_number", '{"type":"direct","to":1,"message":"x"}', "bad_message"),
    ("missing_room", obj(type="message", message="x"), "bad_message"),
    ("missing_message", obj(type="message", room="lobby"), "bad_message"),
    ("missing_to", obj(type="direct", message="x"), "bad_message"),
    ("missing_direct_message", obj(type="direct", to="0" * 32), "bad_message"),
    ("missing_username", obj(type="hello", email="a@b.c"), "bad_message"),
    ("join_without_room", obj(type="join"), "bad_message"),
    ("who_without_room", obj(type="who"), "bad_message"),
    ("empty_object", "{}", "bad_message"),
    ("unknown_type", obj(type="shout", room="lobby", message="x"), "unknown_type"),
    ("type_case", obj(type="Message", room="lobby", message="x"), "unknown_type"),
    ("type_empty", obj(type="", room="lobby", message="x"), "unknown_type"),
    ("dup_room", '{"type":"message","room":"lobby","room":"lobby","message":"x"}',
     "bad_message"),
    ("dup_type", '{"type":"message","type":"message","room":"lobby","message":"x"}',
     "bad_message"),
    ("dup_message", '{"type":"message","room":"lobby","message":"x","message":"y"}',
     "bad_message"),
    ("dup_username", '{"type":"hello","username":"a","username":"b"}', "bad_message"),
    ("room_empty", obj(type="join", room=""), "bad_room"),
    ("room_65", obj(type="join", room="r" * 65), "bad_room"),
    ("room_space", obj(type="join", room="a b"), "bad_room"),
    ("room_slash", obj(type="join", room="a/b"), "bad_room"),
    ("room_unicode", '{"type":"join","room":"caf\u00e9"}', "bad_room"),
    ("room_glob", obj(type="join", room="chat*"), "bad_room"),
    ("room_newline", obj(type="join", room="a\nb"), "bad_room"),
    ("message_room_bad", obj(type="message", room="a b", message="x"), "bad_room"),
    ("leave_room_bad", obj(type="leave", room=""), "bad_room"),
    ("nul_message", '{"type":"message","room":"lobby","message":"a\\u0000b"}', "bad_text"),
    ("nul_username", '{"type":"hello","username":"a\\u0000b"}', "bad_text"),
    ("nul_email", '{"type":"hello","username":"a","email":"a\\u0000@b"}', "bad_text"),
    ("nul_seed", '{"message":"\\u0000"}', "bad_text"),
    ("control_username", obj(type="hello", username="a\tb"), "bad_text"),
    ("control_email", obj(type="hello", username="a", email="a\x1b@b"), "bad_text"),
    ("username_65", obj(type="hello", username="u" * 65), "too_large"),
    ("username_65_bytes_utf8", obj(type="hello", username="\u00e9" * 32 + "u"), "too_large"),
    ("email_255", obj(type="hello", username="a", email="e" * 255), "too_large"),
    ("text_over_max", obj(type="message", room="lobby", message="m" * (MAX_TEXT + 1)),
     "too_large"),
    ("text_over_max_utf8", obj(type="message", room="lobby",
                               message="\u00e9" * (MAX_TEXT // 2) + "x"), "too_large"),
    ("direct_text_over_max", obj(type="direct", to="0" * 32, message="m" * (MAX_TEXT + 1)),
     "too_large"),
    ("deep_arrays", "[" * DEEP + "]" * DEEP, "bad_json"),
    ("deep_objects", '{"a":' * DEEP + "1" + "}" * DEEP, "bad_json"),
    ("deep_in_extra_field", '{"type":"message","room":"lobby","message":"x","x":'
     + "[" * DEEP + "]" * DEEP + "}", "bad_json"),
    ("unclosed_deep", "[" * 60000, "bad_json"),
]
assert all(len(s.encode()) <= 64 * 1024 for _, s, _ in BAD_INPUTS)


async def expect_error(c, code, what, ref=None):
    e = await c.take(lambda f: f.get("type") == "error" or "_raw" in f or "_binary" in f,
                     5, f"an error for {what}")
    assert e.get("code") == code, f"{what}: want {code}, got {e}"
    assert isinstance(e.get("reason"), str) and e["reason"], e
    if ref is not None:
        assert e.get("ref") == ref, f"{what}: want ref {ref!r}, got {e}"
    return e


async def still_alive(c, tag):
    assert c.is_open, f"session closed after {tag}: {c.closed}"
    await c.say("lobby", f"alive after {tag}")
    await c.take(is_message("lobby", f"alive after {tag}", c.id), 5,
                 f"a good message after {tag}")
    await settle(0.05)
    stray = [f for f in c.inbox if f.get("type") == "error"]
    assert not stray, f"more errors after {tag}: {stray}"


@pytest.mark.hostile
@pytest.mark.parametrize("name,data,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_error_and_session_lives(chat, name, data, code):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a")
            await a.send(data)
            await expect_error(a, code, name)
            await still_alive(a, name)

    run(body())


def test_binary_frame_is_bad_message(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a")
            await a.send(b'{"type":"message","room":"lobby","message":"binary"}')
            await expect_error(a, "bad_message", "a binary frame")
            await still_alive(a, "binary frame")
            assert not a.matching(is_message("lobby", "binary"), a.all)

    run(body())


def test_room_state_errors(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a")
            await a.join("st-r1")
            await a.send(obj(type="join", room="st-r1"))
            await expect_error(a, "already_joined", "join twice", ref="st-r1")
            await a.send(obj(type="join", room="lobby"))
            await expect_error(a, "already_joined", "join lobby again", ref="lobby")
            await a.send(obj(type="leave", room="nowhere"))
            await expect_error(a, "not_joined", "leave of a room not joined", ref="nowhere")
            await a.say("nowhere", "x")
            await expect_error(a, "not_joined", "message to a room not joined", ref="nowhere")
            await a.send(obj(type="who", room="nowhere"))
            await expect_error(a, "not_joined", "who of a room not joined", ref="nowhere")
            await a.send(obj(type="leave", room="st-r1"))
            await a.take(is_presence("st-r1", "leave", a.id))
            await a.say("st-r1", "after leave")
            await expect_error(a, "not_joined", "message after leave", ref="st-r1")
            await a.send(obj(type="leave", room="st-r1"))
            await expect_error(a, "not_joined", "leave twice", ref="st-r1")

            # --max-rooms counts lobby: lobby + (MAX_ROOMS - 1) more, then too_many_rooms
            for i in range(MAX_ROOMS - 1):
                await a.join(f"st-m{i}")
            await a.send(obj(type="join", room="st-over"))
            await expect_error(a, "too_many_rooms", "one room too many", ref="st-over")
            await a.send(obj(type="leave", room="st-m0"))
            await a.take(is_presence("st-m0", "leave", a.id))
            await a.join("st-over")
            await a.say("st-over", "in the last slot")
            await a.take(is_message("st-over", "in the last slot", a.id))
            # leaving lobby is allowed, and then lobby is "not joined" like any room
            await a.send(obj(type="leave", room="lobby"))
            await a.take(is_presence("lobby", "leave", a.id))
            await a.say("lobby", "x")
            await expect_error(a, "not_joined", "message to lobby after leaving it",
                               ref="lobby")
            await a.join("lobby")
            await still_alive(a, "room state errors")

    run(body())


def test_bad_inputs_in_one_session_then_good_message_crosses(chat):
    """Every bad input on one session in a row; a peer on the other gateway then hears it."""
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a", hello="ann")
            b = await cs.open(chat.b.port, "b")
            for name, data, code in BAD_INPUTS:
                await a.send(data)
                await expect_error(a, code, name)
                assert a.is_open, f"closed after {name}"
            await a.send(b"\x00\x01binary")
            await expect_error(a, "bad_message", "binary")
            await a.say("lobby", "good after all the bad")
            m = await b.take(is_message("lobby", "good after all the bad"))
            assert m["from"] == a.id and m["username"] == "ann"
            await settle(0.2)
            assert not a.matching(is_error()), a.inbox
            # nothing that was refused reached anyone
            assert [f["message"] for f in b.all if f.get("type") == "message"] == [
                "good after all the bad"]

    run(body())


def test_limits_at_the_edge_are_accepted(chat):
    async def body():
        async with Clients() as cs:
            a = await cs.open(chat.a.port, "a")
            b = await cs.open(chat.b.port, "b")
            room64 = "R" * 60 + "_.:-"
            assert len(room64) == 64
            for room in (room64, "azAZ09_.:-", "x"):
                await a.join(room)
                await a.send(obj(type="leave", room=room))
                await a.take(is_presence(room, "leave", a.id))
            name64 = "\u00e9" * 32  # 64 bytes
            email254 = "e" * 242 + "@example.org"
            assert len(email254) == 254
            await a.hello(name64, email254)
            text = "\u00e9" * (MAX_TEXT // 2)  # exactly --max-text bytes
            await a.send({"type": "message", "room": "lobby", "message": text,
                          "unknown": {"nested": [1, 2]}, "ts": "ignored"})
            m = await b.take(is_message("lobby", text))
            assert (m["username"], m["email"], m["from"]) == (name64, email254, a.id)
            # empty message text and the JSON escapes
            await a.say("lobby", "")
            await b.take(is_message("lobby", ""))
            escaped = r'"q\"\\\/\n\u00e9\ud83d\ude80"'  # JSON escapes, a surrogate pair
            await a.send('{"type":"message","room":"lobby","message":' + escaped + '}')
            m = await b.take(is_message("lobby", 'q"\\/\n\u00e9\U0001f680'))
            assert m["from"] == a.id
            await settle(0.1)
            assert not a.matching(is_error()), a.inbox

    run(body())


# ---------------------------------------------------------------------------------------------
# 8. rate limiting


def test_rate_limit(make_gateway, chat_redis):
    redis = chat_redis
    ga, gb = start_pair(make_gateway, redis.url, "--rate", "5", "--burst", "5",
                        names=("rl-a", "rl-b"))

    async def body():
        async with Clients() as cs:
            a = await cs.open(ga.port, "a")
            b = await cs.open(gb.port, "b")
            for i in range(30):
                await a.say("lobby", f"burst-{i}")
            t_burst = time.monotonic()
            await settle(0.7)
            errors = a.matching(is_error(), a.all)
            assert [e["code"] for e in errors] == ["rate_limited"], errors
            got = [f["message"] for f in b.all if is_message("lobby", sender=a.id)(f)]
            assert 5 <= len(got) <= 7, f"{len(got)} of 30 delivered at rate 5 burst 5: {got}"
            assert got[:5] == [f"burst-{i}" for i in range(5)], got
            mine = [f["message"] for f in a.all if is_message("lobby", sender=a.id)(f)]
            assert mine == got

            # a second later the bucket has refilled
            await asyncio.sleep(max(0.0, 1.2 - (time.monotonic() - t_burst)))
            for i in range(3):
                await a.say("lobby", f"later-{i}")
            for i in range(3):
                await b.take(is_message("lobby", f"later-{i}"), what=f"later-{i} at b")
            await settle(0.2)
            assert len(a.matching(is_error(), a.all)) == 1, a.all
            assert a.is_open and b.is_open

    run(body())


# ---------------------------------------------------------------------------------------------
# 9. Redis killed and restarted mid-traffic


def test_redis_killed_and_restarted(make_gateway, tmp_path):
    r = RedisServer(tmp_path / "redis9").start()
    try:
        ga, gb = start_pair(make_gateway, r.url, "--rate", "1000", "--burst", "1000")
        run(redis_outage(r, ga, gb), timeout=55)
    finally:
        r.stop()


async def redis_outage(r, ga, gb):
    loop = asyncio.get_running_loop()
    async with Clients() as cs:
        a = await cs.open(ga.port, "a", hello="ann", rooms=["r9"])
        b = await cs.open(gb.port, "b", hello="bob", rooms=["r9"])

        stop = asyncio.Event()
        sent = []

        async def traffic():
            for i in range(400):
                if stop.is_set():
                    return
                await a.say("lobby", f"bg-{i}")
                sent.append(i)
                await asyncio.sleep(0.05)

        bg = loop.create_task(traffic())
        await b.take(is_message("lobby", "bg-2"), 5, "background traffic before the kill")

        await loop.run_in_executor(None, r.kill)
        t_kill = time.monotonic()
        for g in (ga, gb):
            took = await async_wait_healthz(g.port, 503, 6)
            assert time.monotonic() - t_kill < 6, f"{g.name}: /healthz 503 after {took:.1f}s"
        # the background sends now fail, each with `unavailable`
        await a.take(is_error("unavailable"), 5, "unavailable for background traffic")
        stop.set()
        await asyncio.wait_for(bg, 5)
        await settle(0.2)
        assert not [f for f in a.all if f.get("type") == "error"
                    and f.get("code") != "unavailable"]
        a.inbox.clear()
        b.inbox.clear()

        # explicit sends during the outage
        await a.say("r9", "during outage")
        e = await a.take(is_error(), 3, "unavailable for a room message")
        assert e["code"] == "unavailable", e
        await b.say("lobby", "during outage b")
        e = await b.take(is_error(), 3, "unavailable on gw-b")
        assert e["code"] == "unavailable", e
        await a.direct(b.id, "direct during outage")
        e = await a.take(is_error(), 3, "unavailable for a direct")
        assert e["code"] == "unavailable", e
        # sessions stay open and answer pings
        for c in (a, b):
            assert c.is_open, f"{c.name} closed during the outage: {c.closed}"
            await c.ping(3)
        # a client arriving during the outage is welcomed at once
        c = await cs.open(gb.port, "c", lobby=False)
        await c.say("lobby", "from c during outage")
        e = await c.take(is_error(), 3, "unavailable for c")
        assert e["code"] == "unavailable", e
        assert healthz(ga.port) == 503 and healthz(gb.port) == 503

        # a few seconds down, so the reconnect backoff grows
        await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - t_kill)))
        assert healthz(ga.port) == 503 and healthz(gb.port) == 503
        await loop.run_in_executor(None, r.start)
        t_up = time.monotonic()
        for g in (ga, gb):
            await async_wait_healthz(g.port, 200, 12)
            assert time.monotonic() - t_up < 12, f"{g.name} not healthy 12s after restart"
        # (c's own lobby presence join is not checked here: whether it comes depends on which
        # Redis link reconnects first; test_join_while_publish_link_down covers that.)
        for x in (a, b, c):
            assert x.is_open, f"{x.name} closed: {x.closed}"
            assert not x.matching(lambda f: f.get("type") == "message"
                                  and "outage" in f.get("message", ""), x.all)
        for x in (a, b, c):
            x.inbox.clear()

        # traffic resumes: lobby, a second room, and directs both ways
        await a.say("lobby", "after-lobby")
        for x in (a, b, c):
            await x.take(is_message("lobby", "after-lobby", a.id), 5,
                         f"lobby after recovery at {x.name}")
        await a.say("r9", "after-r9 from a")
        await b.take(is_message("r9", "after-r9 from a"), 5, "r9 after recovery at b")
        await b.say("r9", "after-r9 from b")
        await a.take(is_message("r9", "after-r9 from b"), 5, "r9 after recovery at a")
        await a.direct(b.id, "direct after")
        await b.take(is_direct("direct after", a.id), 5, "a direct after recovery at b")
        await b.direct(a.id, "direct back")
        await a.take(is_direct("direct back", b.id), 5, "a direct after recovery at a")
        await a.direct(c.id, "to the late one")
        await c.take(is_direct("to the late one", a.id), 5, "a direct to c after recovery")
        await settle(0.2)
        for x in (a, b, c):
            assert not x.matching(is_error()), x.inbox
    for g in (ga, gb):
        assert g.alive(), g.log_tail()
        log = g.log_text()
        assert "redis subscribe link down" in log and "redis proven" in log, g.log_tail()


def test_join_announcement_lost_with_redis_is_made_again(make_gateway, tmp_path):
    """A join's presence PUBLISH that Redis never answers (paused, then killed) is lost with
    its link; the gateway announces the join again once Redis is back, so the joiner still
    gets its proof of hearing the room."""
    r = RedisServer(tmp_path / "redis-lost").start()
    try:
        (g,) = start_pair(make_gateway, r.url, "--workers", "1", names=("lost-a",))

        async def body():
            loop = asyncio.get_running_loop()
            async with Clients() as cs:
                x = await cs.open(g.port, "x", rooms=["lost-1"])  # the room is subscribed
                a = await cs.open(g.port, "a")
                paused = await loop.run_in_executor(
                    None, lambda: r.cli("CLIENT", "PAUSE", "30000", "WRITE").stdout)
                assert paused.strip() == b"OK", paused
                await a.send({"type": "join", "room": "lost-1"})
                await settle(0.5)
                assert not a.matching(is_presence("lost-1", "join", a.id))
                await loop.run_in_executor(None, r.kill)  # the PUBLISH is never answered
                await loop.run_in_executor(None, r.start)
                await loop.run_in_executor(None, wait_healthz, g.port, 200, 15)
                await a.take(is_presence("lost-1", "join", a.id), 10,
                             "a's join, announced again after Redis came back")
                await x.take(is_presence("lost-1", "join", a.id), 5, "a's join at x")
                await a.say("lost-1", "heard")
                await x.take(is_message("lost-1", "heard"), 5)

        run(body())
    finally:
        r.stop()


def test_join_while_publish_link_down_is_announced(make_gateway, tmp_path):
    """PROTOCOL.md, Session 4: a join is announced once the room's subscription is confirmed,
    and that presence is the joiner's proof that it hears the room. Redis drops only the
    gateways' publish links (CLIENT KILL TYPE normal; subscribers are TYPE pubsub), a client
    joins a room at once: the subscription is confirmed on the live subscribe link while the
    publish link is still reconnecting. The join must still be announced (late is fine)."""
    r = RedisServer(tmp_path / "redis-pk").start()
    try:
        g1, g2 = start_pair(make_gateway, r.url, "--rate", "1000", "--burst", "1000",
                            names=("pk-a", "pk-b"))

        async def body():
            loop = asyncio.get_running_loop()
            lost = []
            async with Clients() as cs:
                a = await cs.open(g1.port, "a")
                x = await cs.open(g2.port, "x", rooms=[f"pk-{i}" for i in range(3)])
                for i in range(3):
                    room = f"pk-{i}"
                    await loop.run_in_executor(None, wait_healthz, g1.port, 200, 10)
                    killed = await loop.run_in_executor(
                        None, lambda: r.cli("CLIENT", "KILL", "TYPE", "normal").stdout)
                    await a.send({"type": "join", "room": room})
                    try:
                        await a.take(is_presence(room, "join", a.id), 3,
                                     f"a's own join of {room}")
                    except AssertionError:
                        lost.append((room, killed.strip().decode()))
                        continue
                    await x.take(is_presence(room, "join", a.id), 2, f"a's join at x")
                    # a hears the room either way
                await a.say(f"pk-{i}", "after the joins")
                await x.take(is_message(f"pk-{i}", "after the joins"), 5)
            assert not lost, (
                f"joins never announced (room, publish links killed): {lost}; log of pk-a:\n"
                + "\n".join(ln for ln in g1.log_text().splitlines()[-12:]))

        run(body())
    finally:
        r.stop()


# ---------------------------------------------------------------------------------------------
# 10. a slow reader is cut; the others get everything


def test_slow_reader_closed_others_get_everything(make_gateway, chat_redis):
    redis = chat_redis
    g = make_gateway(*BASE_ARGS, "--redis", redis.url, "--gateway-id", "gw-slow",
                     "--max-output", "64KiB", "--rate", "100000", "--burst", "100000")
    wait_healthz(g.port, 200, 10)
    g.new_log()
    slow = ws_connect(g.port, "/ws", rcvbuf=4096)
    try:
        run(slow_reader(g, slow), timeout=50)
    finally:
        slow.close()


async def slow_reader(g, slow):
    pad = "x" * 1000
    chunk = 32
    async with Clients() as cs:
        fast = await cs.open(g.port, "fast")
        recv = await cs.open(g.port, "recv")
        sent = 0
        cut_at = None
        t0 = time.monotonic()
        for _ in range(400):  # at most 12800 messages of 1 KiB
            for i in range(sent, sent + chunk):
                await fast.say("lobby", f"{i:06d}{pad}")
            sent += chunk
            last = f"{sent - 1:06d}{pad}"
            await recv.take(is_message("lobby", last), 10, f"message {sent - 1} at recv")
            if cut_at is None and "slow reader" in g.log_text():
                cut_at = sent
            if cut_at is not None and sent >= cut_at + 4 * chunk:
                break
            assert time.monotonic() - t0 < 30, f"no slow reader cut after {sent} messages"
        assert cut_at is not None, f"slow reader never cut after {sent} messages:\n" \
            + g.log_tail()
        await settle(0.3)
        for c in (recv, fast):
            got = [f["message"] for f in c.all if is_message("lobby", sender=fast.id)(f)]
            assert got == [f"{i:06d}{pad}" for i in range(sent)], (
                f"{c.name}: {len(got)} of {sent}, first gap at "
                f"{next((i for i, t in enumerate(got) if t[:6] != f'{i:06d}'), None)}")
            assert c.is_open, f"{c.name} was closed too: {c.closed}"

    # The slow client is closed: after reading what was sent, EOF comes within a few seconds.
    data = await asyncio.get_running_loop().run_in_executor(None, slow.expect_eof, 10)
    frames, _ = parse_frames(data)
    closes = [p for op, p in frames if op == 0x8]
    if closes:
        assert int.from_bytes(closes[0][:2], "big") == 1008, closes[0]
    lines = [ln for ln in g.log_text().splitlines() if "slow reader" in ln]
    assert lines, g.log_tail()
    assert wait_healthz(g.port, 200, 3) is not None


# ---------------------------------------------------------------------------------------------
# 11. what MONITOR shows


def test_monitor_shows_readable_publish(chat):
    mon = Monitor(chat.redis.cli_argv())
    try:
        assert mon.wait_line(lambda ln: ln.strip() == b"OK", 5)
        marker = f"monitor-{uuid.uuid4().hex}"
        text = f"{marker} caf\u00e9 \"quoted\""

        async def body():
            async with Clients() as cs:
                a = await cs.open(chat.a.port, "a", hello="ann", email="ann@example.org")
                b = await cs.open(chat.b.port, "b")
                await a.say("lobby", text)
                m = await b.take(is_message("lobby", text))
                raw = [r for r in b.raw if m["id"] in r]
                await a.direct(b.id, marker + "-direct")
                await b.take(is_direct(marker + "-direct"))
                return m, raw[0]

        m, raw = run(body())
        line = mon.wait_line(lambda ln: marker.encode() in ln and b'"PUBLISH"' in ln
                             and b'"chat:room:lobby"' in ln, 5)
        # readable as it stands: the JSON is in the line with only quotes escaped
        assert b'{\\"type\\":\\"message\\",\\"room\\":\\"lobby\\"' in line, line
        args = monitor_args(line)
        assert args[:2] == [b"PUBLISH", b"chat:room:lobby"], args
        assert args[2] == raw.encode(), (args[2], raw)  # exactly what clients receive
        assert json.loads(args[2]) == m
        dline = mon.wait_line(lambda ln: (marker + "-direct").encode() in ln, 5)
        dargs = monitor_args(dline)
        assert dargs[0] == b"PUBLISH" and dargs[1].startswith(b"chat:client:"), dargs
        assert json.loads(dargs[2])["to"] == dargs[1].decode().split(":")[2]
    finally:
        mon.stop()


# ---------------------------------------------------------------------------------------------
# 12. Redis over a Unix socket, with a password, with a wrong password


async def crosses(ga, gb, tag):
    async with Clients() as cs:
        a = await cs.open(ga.port, "a")
        b = await cs.open(gb.port, "b")
        await a.say("lobby", f"{tag} a->b")
        await b.take(is_message("lobby", f"{tag} a->b", a.id), 5, f"{tag} message at b")
        await b.direct(a.id, f"{tag} direct")
        await a.take(is_direct(f"{tag} direct", b.id), 5, f"{tag} direct at a")


def test_redis_unix_socket(make_gateway, tmp_path):
    r = RedisServer(tmp_path / "redis-unix", unix=True, tcp=False).start()
    try:
        g1 = make_gateway(*BASE_ARGS, "--redis", r.unixsocket, "--gateway-id", "unix-path")
        g2 = make_gateway(*BASE_ARGS, "--redis", "unix://" + r.unixsocket,
                          "--gateway-id", "unix-url")
        for g in (g1, g2):
            wait_healthz(g.port, 200, 10)
        run(crosses(g1, g2, "unix"))
        clients = r.cli("CLIENT", "LIST").stdout.decode()
        assert clients.count("sub=") >= 4 and "addr=/" in clients, clients
    finally:
        r.stop()


def test_redis_password(make_gateway, tmp_path):
    r = RedisServer(tmp_path / "redis-pw", password="s3cret-pw").start()
    try:
        assert r.url.startswith("redis://:s3cret-pw@")
        g1, g2 = start_pair(make_gateway, r.url, names=("pw-a", "pw-b"))
        run(crosses(g1, g2, "password"))

        wrong = make_gateway(*BASE_ARGS, "--redis", f"redis://:wrong-pw@127.0.0.1:{r.port}",
                             "--gateway-id", "pw-wrong", start=False)
        nopw = make_gateway(*BASE_ARGS, "--redis", f"redis://127.0.0.1:{r.port}",
                            "--gateway-id", "pw-none", start=False)
        for g in (wrong, nopw):
            g.start(wait=False)  # they never become healthy
        for g in (wrong, nopw):
            wait_accepting(g)
        statuses = {wrong.name: [], nopw.name: []}
        for _ in range(12):  # 3 s: several connect attempts and probe periods
            for g in (wrong, nopw):
                statuses[g.name].append(healthz(g.port))
            time.sleep(0.25)
        for g in (wrong, nopw):
            assert set(statuses[g.name]) == {503}, (g.name, statuses)
            auth_lines = [ln for ln in g.log_text().splitlines() if "AUTH" in ln]
            assert auth_lines, g.log_tail()

        async def refused():
            async with Clients() as cs:
                c = await cs.open(wrong.port, "c", lobby=False)
                await c.say("lobby", "nobody hears this")
                e = await c.take(is_error(), 3, "unavailable with a wrong password")
                assert e["code"] == "unavailable", e

        run(refused())
        assert wrong.alive()
    finally:
        r.stop()
