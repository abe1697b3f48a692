"""Connect tokens (HS256 JWTs) end to end: a real redis-server, two gateways with one secret.

Tokens are minted here with gwtest.make_token, on Python's own hmac module (an implementation
independent of the gateway's OpenSSL code) and, in the tool's test, by chat-token. Every refusal is a 401 at the
handshake; a token that runs out mid-session closes it with 4001; `sub` is shown with the
user's messages and names the target of `direct` with `to_user`, on any gateway.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import re
import subprocess
import time
from types import SimpleNamespace

import pytest

from chattest import Clients, is_direct, is_error, is_message, is_presence, run, settle
from gwtest import (Gateway, b64url, handshake_request, http_get, http_request, make_token,
                    tool_path)
from redistest import RedisServer

SECRET = "tests-only-secret-0123456789abcdef-xyz"
BASE_ARGS = ["--close-timeout", "1s", "--drain-timeout", "3s", "--rate", "1000", "--burst",
             "1000"]
TOKEN_ARGS = ["--token-secret", SECRET]


def mint(claims=None, secret=SECRET, header=None, **kw):
    """A token for claims (sub "ann" and exp in an hour unless given); kw adds claims."""
    body = {"sub": "ann", "exp": int(time.time()) + 3600}
    body.update(claims or {})
    body.update(kw)
    return make_token(secret, {k: v for k, v in body.items() if v is not None}, header)


def metric(port, name):
    body = http_get(port, "/metrics").body.decode()
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", body, re.M))


def upgrade_path(port, path):
    return http_request(port, handshake_request(path, host=f"127.0.0.1:{port}"))


def upgrade(port, token=None, where="query"):
    """A raw /ws upgrade carrying token (or none); returns the response."""
    path, extra = "/ws", []
    if token is not None and where == "query":
        path += "?token=" + token
    elif token is not None and where == "header":
        extra.append(("Authorization", "Bearer " + token))
    elif token is not None:
        extra.append(("Sec-WebSocket-Protocol", "token." + token))
    return http_request(port, handshake_request(path, host=f"127.0.0.1:{port}", extra=extra))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def tok(gateway_bin, site, tmp_path_factory):
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    gws = []
    try:
        for name, extra in (("gw-a", TOKEN_ARGS), ("gw-b", TOKEN_ARGS),
                            ("gw-opt", TOKEN_ARGS + ["--tokens", "optional"])):
            g = Gateway(tmp_path_factory.mktemp(name),
                        args=BASE_ARGS + extra + ["--redis", redis.url, "--gateway-id", name],
                        public_dir=site["public"], name=name)
            gws.append(g)
            g.start()
        yield SimpleNamespace(a=gws[0], b=gws[1], opt=gws[2], redis=redis)
    finally:
        problems = []
        for g in gws:
            problems += [f"{g.name}: {p}\n{g.log_tail()}" for p in g.stop(timeout=10)]
        redis.stop()
        if problems:
            pytest.fail("token gateways at module end:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def tk(tok, request):
    shared = [tok.a, tok.b, tok.opt]
    request.node._gateways = list(shared)  # conftest shows their logs when the test fails
    for g in shared:
        g.new_log()
    yield tok
    for g in shared:
        assert g.alive(), f"{g.name} died:\n{g.log_tail()}"


# ---------------------------------------------------------------------------------------------
# where the token goes


def test_token_in_query_header_or_subprotocol(tk):
    async def go():
        async with Clients() as cs:
            a = await cs.open(tk.a.port, query="?token=" + mint(sub="ann"))
            b = await cs.open(tk.a.port, headers=[("Authorization", "Bearer " + mint(sub="bob"))])
            t = mint(sub="cy")
            c = await cs.open(tk.b.port, subprotocols=["token." + t])
            assert a.welcome["user"] == "ann" and b.welcome["user"] == "bob"
            assert c.welcome["user"] == "cy"
            # A browser needs one of its offered protocols echoed: the token entry it was.
            assert c.ws.subprotocol == "token." + t
            # access_token (RFC 6750) works as the query parameter too, percent-encoded or not.
            d = await cs.open(tk.a.port, query="?x=1&access_token=" + mint(sub="dee"))
            assert d.welcome["user"] == "dee"
    run(go())


def test_query_edge_cases(tk):
    good = mint(sub="q")
    # Other parameters, with or without "=", do not hide the token; percent-encoding decodes.
    assert upgrade_path(tk.a.port, f"/ws?foo&x=1&token={good}").status == 101
    enc = good.replace(".", "%2E").replace("-", "%2D")
    assert upgrade_path(tk.a.port, f"/ws?token={enc}").status == 101
    # A NUL does not cut a token short into a valid one; names are exact.
    r = upgrade_path(tk.a.port, f"/ws?token={good}%00junk")
    assert r.status == 401 and b"malformed" in r.body, r
    r = upgrade_path(tk.a.port, f"/ws?TOKEN={good}")
    assert r.status == 401 and b"required" in r.body, r


def test_token_in_query_with_a_token_entry_offered_is_echoed(tk):
    """A browser that offers token.<jwt> gets it back even when the query carried the token."""
    t = mint(sub="echo")
    r = http_request(tk.a.port, handshake_request(
        f"/ws?token={t}", host=f"127.0.0.1:{tk.a.port}",
        extra=[("Sec-WebSocket-Protocol", "token." + t)]))
    assert r.status == 101 and r.header("Sec-WebSocket-Protocol") == "token." + t, r


def test_debug_log_never_shows_the_token(make_gateway):
    g = make_gateway(*TOKEN_ARGS, "--log-level", "debug")
    t = mint(sub="logged")

    async def go():
        async with Clients() as cs:
            c = await cs.open(g.port, subprotocols=["token." + t])
            assert c.welcome["user"] == "logged"
    run(go())
    text = g.log_text()
    assert "websocket open subprotocol=token" in text
    assert t.split(".")[2] not in text and t.split(".")[1] not in text


def test_missing_token_is_401_with_a_bearer_challenge(tk):
    before = metric(tk.a.port, "chat_tokens_rejected_total")
    r = upgrade(tk.a.port)
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == 'Bearer realm="chat"'
    assert b"token is required" in r.body
    assert metric(tk.a.port, "chat_tokens_rejected_total") == before + 1
    # Tokens guard chat sessions only; the page and /healthz stay open.
    assert http_get(tk.a.port, "/healthz").status == 200
    assert http_get(tk.a.port, "/").status == 200


def _bad_tokens():
    now = int(time.time())
    good = mint()
    head, body, sig = good.split(".")
    return {
        "wrong secret": (mint(secret="another-secret-of-enough-length-12345"), "signature"),
        "alg none": (b64url(b'{"alg":"none"}') + "." + body + ".", "HS256"),
        "alg none signed": (mint(header={"alg": "none"}), "HS256"),
        "alg HS512": (mint(header={"alg": "HS512", "typ": "JWT"}), "HS256"),
        "alg RS256": (mint(header={"alg": "RS256"}), "HS256"),
        "crit header": (mint(header={"alg": "HS256", "crit": ["exp"]}), "HS256"),
        "typ not JWT": (mint(header={"alg": "HS256", "typ": "JOSE+JSON"}), "malformed"),
        "expired": (mint(exp=now - 120), "expired"),
        "not yet": (mint(nbf=now + 600), "not valid yet"),
        "no exp": (mint(exp=None), "claims"),
        "exp a string": (mint(exp=str(now + 60)), "claims"),
        "no sub": (mint(sub=None), "claims"),
        "empty sub": (mint(sub=""), "claims"),
        "sub a number": (mint(sub=42), "claims"),
        "sub too long": (mint(sub="x" * 65), "claims"),
        "sub with a control char": (mint(sub="ann\u0007"), "claims"),
        "rooms not a list": (mint(rooms="lobby"), "claims"),
        "bad room pattern": (mint(rooms=["no spaces"]), "claims"),
        "payload an array": (head + "." + b64url(b"[1]") + "." + b64url(hmac.new(
            SECRET.encode(), (head + "." + b64url(b"[1]")).encode(), hashlib.sha256).digest()),
            "malformed"),
        "two parts": (head + "." + body, "malformed"),
        "four parts": (good + ".x", "malformed"),
        "bad base64 header": ("*" + head + "." + body + "." + sig, "malformed"),
        # The signature covers the payload's text: a broken payload fails there first.
        "bad base64 payload": (head + ".*" + body + "." + sig, "signature"),
        "padded signature": (good + "=", "malformed"),
        "truncated signature": (good[:-4], "signature"),
        "flipped payload": (head + "." + mint(sub="root").split(".")[1] + "." + sig, "signature"),
        "garbage": ("not-a-token", "malformed"),
        "huge": (mint(pad="x" * 5000), "malformed"),
    }


BAD = _bad_tokens()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_token_is_401_invalid_token(tk, case):
    token, why = BAD[case]
    before = metric(tk.b.port, "chat_tokens_rejected_total")
    r = upgrade(tk.b.port, token, where="header" if len(token) > 3000 else "query")
    assert r.status in (401, 431), r  # a huge token may pass the header limit first
    if r.status == 401:
        assert r.header("WWW-Authenticate") == 'Bearer realm="chat", error="invalid_token"'
        assert why.encode() in r.body, r.body
        assert metric(tk.b.port, "chat_tokens_rejected_total") == before + 1


@pytest.mark.parametrize("where", ["query", "header", "subprotocol"])
def test_bad_token_refused_wherever_it_is(tk, where):
    r = upgrade(tk.a.port, mint(secret="x" * 40), where=where)
    assert r.status == 401 and b"signature" in r.body, r


def test_clock_skew_leeway(tk):
    now = int(time.time())
    assert upgrade(tk.a.port, mint(exp=now - 10)).status == 101  # within the default 30 s
    assert upgrade(tk.a.port, mint(nbf=now + 10)).status == 101
    assert upgrade(tk.a.port, mint(exp=now - 45)).status == 401
    assert upgrade(tk.a.port, mint(nbf=now + 45)).status == 401


# ---------------------------------------------------------------------------------------------
# who the user is


def test_sub_is_shown_with_messages_presence_and_members(tk):
    async def go():
        async with Clients() as cs:
            ann = await cs.open(tk.a.port, query="?token=" + mint(sub="ann", name="Ann A."))
            bob = await cs.open(tk.b.port, query="?token=" + mint(sub="bob"))
            assert bob.welcome["user"] == "bob"
            p = await ann.take(is_presence("lobby", "join", bob.id))
            assert p["user"] == "bob" and p["username"] == "bob"
            await ann.say("lobby", "hi from ann")
            m = await bob.take(is_message("lobby", "hi from ann"))
            assert m["user"] == "ann" and m["username"] == "Ann A." and m["from"] == ann.id
            # A display name may change; the user id may not.
            await ann.hello("totally-bob")
            await settle(0.2)
            await ann.say("lobby", "still ann")
            m = await bob.take(is_message("lobby", "still ann"))
            assert m["user"] == "ann" and m["username"] == "totally-bob"
            await bob.send({"type": "who", "room": "lobby"})
            seen = {}
            for _ in range(4):
                f = await bob.take(lambda f: f.get("type") == "members", what="members")
                seen.update({e["client"]: e for e in f["members"]})
                if ann.id in seen and bob.id in seen:
                    break
            assert seen[ann.id]["user"] == "ann" and seen[bob.id]["user"] == "bob"
    run(go())


def test_guests_and_users_on_an_optional_gateway(tk):
    async def go():
        async with Clients() as cs:
            guest = await cs.open(tk.opt.port)
            user = await cs.open(tk.opt.port, query="?token=" + mint(sub="zed"))
            assert "user" not in guest.welcome and user.welcome["user"] == "zed"
            await guest.say("lobby", "from a guest")
            m = await user.take(is_message("lobby", "from a guest"))
            assert "user" not in m
    run(go())
    # Optional admits the absent token, never a bad one.
    assert upgrade(tk.opt.port, mint(exp=int(time.time()) - 3600)).status == 401


# ---------------------------------------------------------------------------------------------
# direct messages to a user


def test_direct_to_user_reaches_every_session_on_every_gateway(tk):
    async def go():
        async with Clients() as cs:
            ann = [await cs.open(tk.a.port, f"ann{i}", query="?token=" + mint(sub="ann"))
                   for i in range(2)]
            ann.append(await cs.open(tk.b.port, "ann2", query="?token=" + mint(sub="ann")))
            bob = await cs.open(tk.a.port, "bob", query="?token=" + mint(sub="bob"))
            carol = await cs.open(tk.b.port, "carol", query="?token=" + mint(sub="carol"))
            await carol.send({"type": "direct", "to_user": "ann", "message": "psst"})
            for a in ann:
                d = await a.take(is_direct("psst"), what="the direct message")
                assert d["to_user"] == "ann" and d["user"] == "carol" and d["from"] == carol.id
                assert "to" not in d
            await settle(0.3)
            assert not bob.matching(is_direct()) and not carol.matching(is_direct())
            # One session leaving does not cut the others off.
            await cs.close(ann[0])
            await settle(0.2)
            await bob.send({"type": "direct", "to_user": "ann", "message": "still there?"})
            for a in ann[1:]:
                await a.take(is_direct("still there?"))
            for a in ann[1:]:
                await cs.close(a)
            await settle(0.3)
            await bob.send({"type": "direct", "to_user": "ann", "message": "gone"})
            e = await bob.take(is_error("unknown_target"))
            assert e["ref"] == "ann" and "user" in e["reason"]
    run(go())


def test_direct_to_user_validation(tk):
    async def go():
        async with Clients() as cs:
            c = await cs.open(tk.a.port, query="?token=" + mint(sub="val"))
            for msg, code in (
                    ({"type": "direct", "to_user": "", "message": "x"}, "bad_target"),
                    ({"type": "direct", "to_user": "a\u0001", "message": "x"}, "bad_target"),
                    ({"type": "direct", "to_user": "x" * 65, "message": "x"}, "bad_target"),
                    ({"type": "direct", "to_user": 5, "message": "x"}, "bad_message"),
                    ({"type": "direct", "to_user": "ann", "to": "0" * 32, "message": "x"},
                     "bad_target"),
                    ({"type": "direct", "message": "x"}, "bad_message")):
                await c.send(msg)
                e = await c.take(is_error(), what=f"error for {msg}")
                assert e["code"] == code, (msg, e)
    run(go())


# ---------------------------------------------------------------------------------------------
# the rooms claim


def test_rooms_claim_limits_joins(tk):
    async def go():
        async with Clients() as cs:
            before = metric(tk.a.port, "chat_forbidden_joins_total")
            t = mint(sub="teamer", rooms=["team-*", "general"])
            c = await cs.open(tk.a.port, query="?token=" + t, lobby=False)
            assert c.welcome["rooms"] == []  # lobby is not in the claim: not joined
            await c.join("team-red")
            await c.join("general")
            for room in ("lobby", "team", "generalx", "other"):
                await c.send({"type": "join", "room": room})
                e = await c.take(is_error("forbidden"), what=f"forbidden for {room}")
                assert e["ref"] == room
            await c.say("lobby", "sneak")
            assert (await c.take(is_error("not_joined")))["ref"] == "lobby"
            assert metric(tk.a.port, "chat_forbidden_joins_total") == before + 4
            anyroom = await cs.open(tk.a.port, query="?token=" + mint(sub="x", rooms=["*"]))
            assert anyroom.welcome["rooms"] == ["lobby"]
            await anyroom.join("whatever")
            none = await cs.open(tk.a.port, query="?token=" + mint(sub="y", rooms=[]),
                                 lobby=False)
            await none.send({"type": "join", "room": "lobby"})
            await none.take(is_error("forbidden"))
    run(go())


# ---------------------------------------------------------------------------------------------
# expiry during a session


def test_token_expiring_mid_session_closes_4001(make_gateway):
    g = make_gateway(*TOKEN_ARGS, "--token-leeway", "0s")

    async def go():
        async with Clients() as cs:
            exp = int(time.time()) + 2
            c = await cs.open(g.port, query="?token=" + mint(exp=exp))
            t0 = time.time()
            for _ in range(100):
                if c.closed is not None:
                    break
                await asyncio.sleep(0.1)
            assert c.closed is not None, "session outlived its token"
            assert c.closed.code == 4001 and c.closed.reason == "token expired"
            # verify counts whole seconds: the token is good through second exp
            assert exp + 0.8 <= time.time() <= exp + 2.5, (t0, exp, time.time())
    run(go())
    assert metric(g.port, "chat_tokens_expired_total") == 1
    assert upgrade(g.port, mint(exp=int(time.time()) - 1)).status == 401


def test_refresh_extends_the_session(make_gateway):
    g = make_gateway(*TOKEN_ARGS, "--token-leeway", "0s")

    async def go():
        async with Clients() as cs:
            exp = int(time.time()) + 2
            c = await cs.open(g.port, query="?token=" + mint(sub="ref", exp=exp))
            assert c.welcome["exp"] == exp
            later = int(time.time()) + 600
            await c.send({"type": "refresh", "token": mint(sub="ref", exp=later,
                                                            rooms=["lobby", "kept"])})
            assert (await c.take(lambda f: f.get("type") == "refreshed"))["exp"] == later
            await asyncio.sleep(exp + 1.5 - time.time())
            assert c.is_open, "the refreshed session was closed at the old exp"
            await c.say("lobby", "still here")
            await c.take(is_message("lobby", "still here"))
            # The new token's rooms claim governs later joins.
            await c.join("kept")
            await c.send({"type": "join", "room": "other"})
            await c.take(is_error("forbidden"))
            # Refused refreshes leave the session as it was.
            for token, code in ((mint(sub="someone-else"), "forbidden"),
                                (mint(sub="ref", secret="y" * 40), "bad_token"),
                                (mint(sub="ref", exp=int(time.time()) - 5), "bad_token"),
                                ("x" * 5000, "too_large")):
                await c.send({"type": "refresh", "token": token})
                e = await c.take(is_error(), what=f"error for a {code} refresh")
                assert e["code"] == code, e
            assert c.is_open
            # A short one brings the end closer again.
            soon = int(time.time()) + 1
            await c.send({"type": "refresh", "token": mint(sub="ref", exp=soon)})
            await c.take(lambda f: f.get("type") == "refreshed")
            for _ in range(60):
                if c.closed is not None:
                    break
                await asyncio.sleep(0.1)
            assert c.closed is not None and c.closed.code == 4001
    run(go())


def test_refresh_on_a_guest_or_tokenless_gateway(tk, make_gateway):
    plain = make_gateway()

    async def go():
        async with Clients() as cs:
            guest = await cs.open(tk.opt.port)
            await guest.send({"type": "refresh", "token": mint(sub="guest")})
            assert (await guest.take(is_error()))["code"] == "forbidden"
            anon = await cs.open(plain.port)
            await anon.send({"type": "refresh", "token": mint(sub="anon")})
            e = await anon.take(is_error())
            assert e["code"] == "bad_token" and "no connect tokens" in e["reason"]
    run(go())


# ---------------------------------------------------------------------------------------------
# configuration and the tool


def test_secret_settings_are_checked(tmp_path, gateway_bin, site):
    def start(*args):
        return subprocess.run([str(gateway_bin), *args, "--workers", "0", "--public-dir",
                               str(site["public"])], capture_output=True, text=True, timeout=10)
    r = start("--token-secret", "short")
    assert r.returncode == 1 and "at least 32 bytes" in r.stderr, r
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    r = start("--token-secret", SECRET, "--token-secret-file", str(f))
    assert r.returncode == 1 and "not both" in r.stderr, r
    r = start("--token-secret-file", str(tmp_path / "missing"))
    assert r.returncode == 1 and "No such file" in r.stderr, r
    r = start("--tokens", "sometimes")
    assert r.returncode == 1 and "--tokens" in r.stderr, r


def test_secret_file_and_chat_token_tool(make_gateway, tmp_path):
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    g = make_gateway("--token-secret-file", str(f))
    tool = tool_path("CHAT_TOKEN_BIN", "chat-token")
    out = subprocess.run([str(tool), "--sub", "ann", "--name", "Ann", "--ttl", "10m", "--rooms",
                          "lobby,team-*", "--secret-file", str(f)],
                         capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    head, body, sig = out.split(".")
    want = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert b64url(want) == sig
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["sub"] == "ann" and claims["name"] == "Ann"
    assert claims["rooms"] == ["lobby", "team-*"]
    assert 590 <= claims["exp"] - time.time() <= 610

    async def go():
        async with Clients() as cs:
            c = await cs.open(g.port, headers=[("Authorization", "Bearer " + out)])
            assert c.welcome["user"] == "ann"
    run(go())
    env_run = subprocess.run([str(tool), "--sub", "bob"], capture_output=True, text=True,
                             timeout=10, env={"CHAT_TOKEN_SECRET": SECRET})
    assert env_run.returncode == 0 and upgrade(g.port, env_run.stdout.strip()).status == 101
    for bad in (["--sub", "x", "--secret", "short"], ["--secret", SECRET],
                ["--sub", "x", "--secret", SECRET, "--rooms", "a b"],
                ["--sub", "x", "--secret", SECRET, "--ttl", "-5"]):
        r = subprocess.run([str(tool), *bad], capture_output=True, text=True, timeout=10,
                           env={})
        assert r.returncode == 2 and r.stderr.startswith("chat-token: "), (bad, r)
