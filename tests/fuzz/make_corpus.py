#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Each seed starts with the control bytes its target reads first (see the top comment of
tests/fuzz/fuzz_<target>.c), then real inputs: browser handshakes, masked client frames,
compressed messages, the JSON examples of proto/PROTOCOL.md. The output is deterministic;
run it again after changing a target's input layout and commit the result.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_ID = "9732ef6e15be15dc2927e0cb599eb90d"
OTHER_ID = "f92a50fb09516090690ebf65d6a1ca03"
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])
# The key of connect tokens in fuzz_jwt and fuzz_http's token configurations, another key,
# and the time fuzz_http checks them at (Unix seconds).
JWT_KEY = b"chatbroker-fuzz-key-0123456789abcdef"
OTHER_KEY = b"chatbroker-fuzz-key-0123456789abcdeF"
NOW = 1795241718


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def deflate_raw(data, wbits=15, final=False):
    """A raw deflate stream as a permessage-deflate sender makes it (no trailing 00 00 ff ff)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -max(wbits, 9))
    out = c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, header=None, key=JWT_KEY):
    """A compact HS256 token; claims and header are dicts or JSON texts (str)."""
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header

    def text(x):
        return (x if isinstance(x, str) else json.dumps(x, separators=(",", ":"), ensure_ascii=False)).encode()

    signing_input = b64url(text(header)) + "." + b64url(text(claims))
    return signing_input + "." + b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


# ---- fuzz_http: flags (head limit, config), chunk plan, stream ----------------------------

UPGRADE = (
    "GET /ws HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "{extra}"
    "\r\n"
)


def upgrade(extra=""):
    return UPGRADE.replace("{extra}", extra).encode()


def http_seeds():
    plan_whole = b"\x00"
    plan_bytes = b"\x01\x00"  # one size: 1 byte per chunk
    plan_mixed = b"\x03\x06\x0c\x00"  # 7, 13, 1 bytes in turn
    write("fuzz_http", "upgrade", b"\x00" + plan_whole + upgrade())
    write(
        "fuzz_http",
        "upgrade_deflate_protocol_bytewise",
        b"\x00"
        + plan_bytes
        + upgrade(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n"
            "Sec-WebSocket-Protocol: superchat, chat\r\n"
        ),
    )
    write(
        "fuzz_http",
        "upgrade_allowlist",
        b"\x08" + plan_mixed + upgrade(),
    )
    write(
        "fuzz_http",
        "upgrade_any_origin_frames_follow",
        b"\x10" + plan_whole + upgrade() + b"\x81\x85" + MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(b"hello")),
    )
    write(
        "fuzz_http",
        "upgrade_bad_origin",
        b"\x00" + plan_whole + upgrade().replace(b"Origin: http://localhost:8080", b"Origin: https://evil.example"),
    )
    write(
        "fuzz_http",
        "upgrade_version_8",
        b"\x00" + plan_whole + upgrade().replace(b"Version: 13", b"Version: 8"),
    )
    write(
        "fuzz_http",
        "upgrade_two_keys",
        b"\x00" + plan_whole + upgrade("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"),
    )
    paths = [
        "/",
        "/app.js",
        "/sub",
        "/sub/",
        "/sub/a%20b.txt",
        "/%2e%2e/secret",
        "/sub/../../secret",
        "/.env",
        "/link.txt",
        "/secret.txt",
        "/etc/passwd",
        "/sub/up/index.html",
        "/a%00b",
        "/%zz",
        "/index.html?x=1#frag",
        "http://localhost:8080/index.html",
    ]
    pipeline = "".join(
        "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % ("HEAD" if i % 3 == 2 else "GET", p)
        for i, p in enumerate(paths)
    )
    write("fuzz_http", "pipeline_static", b"\x00" + plan_mixed + pipeline.encode())
    write(
        "fuzz_http",
        "if_modified_since",
        b"\x00" + plan_whole + b"GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n",
    )
    write(
        "fuzz_http",
        "post_body",
        b"\x00" + plan_whole + b"POST /ws HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    )
    write(
        "fuzz_http",
        "chunked_body",
        b"\x00" + plan_bytes + b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /app.js HTTP/1.1\r\n\r\n",
    )
    write("fuzz_http", "http10", b"\x00" + plan_whole + b"GET / HTTP/1.0\r\n\r\n")
    write("fuzz_http", "http2_preface", b"\x00" + plan_whole + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    many = "".join("X-Header-%d: %s\r\n" % (i, "v" * 10) for i in range(70))
    write("fuzz_http", "head_too_large_256", b"\x03" + plan_whole + ("GET / HTTP/1.1\r\n" + many + "\r\n").encode())
    write("fuzz_http", "too_many_headers", b"\x00" + plan_whole + ("GET / HTTP/1.1\r\n" + many + "\r\n").encode())
    write("fuzz_http", "folded_header", b"\x00" + plan_whole + b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n  two\r\n\r\n")
    http_token_seeds()


def http_token_seeds():
    """Configuration 3 requires a connect token, 4 admits guests too (flags bits 3-5)."""
    required, optional, whole = b"\x18", b"\x20", b"\x00"
    good = jwt({"sub": "ann", "name": "Ann", "exp": NOW + 3600, "rooms": ["lobby", "team-*"]})
    expired = jwt({"sub": "ann", "exp": NOW - 3600})
    write("fuzz_http", "token_bearer", required + whole + upgrade("Authorization: Bearer %s\r\n" % good))
    write("fuzz_http", "token_bearer_expired", required + whole + upgrade("Authorization: bearer %s\r\n" % expired))
    write("fuzz_http", "token_missing_required", required + whole + upgrade())
    write("fuzz_http", "token_missing_optional", optional + whole + upgrade())
    write(
        "fuzz_http",
        "token_query",
        optional + whole + upgrade().replace(b"GET /ws ", ("GET /ws?room=x&access_token=%s " % good).encode()),
    )
    write(
        "fuzz_http",
        "token_query_percent",
        required + whole + upgrade().replace(b"GET /ws ", ("GET /ws?token=%s%%2E " % good).encode()),
    )
    write(
        "fuzz_http",
        "token_subprotocol",
        required + whole + upgrade("Sec-WebSocket-Protocol: token.%s\r\n" % good),
    )
    write(
        "fuzz_http",
        "token_subprotocol_and_chat",
        optional + b"\x01\x10" + upgrade("Sec-WebSocket-Protocol: token.%s , chat\r\n" % good),
    )
    write(
        "fuzz_http",
        "token_subprotocol_bad_signature",
        required + whole + upgrade("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: token.%sx\r\n" % good),
    )


# ---- fuzz_ws: flags, chunk plan, stream -----------------------------------------------------


def frame(b0, payload, mask=MASK, length_form=None):
    """A client frame: masked, with the shortest length form unless told."""
    n = len(payload)
    m = 0x80 if mask else 0
    if length_form == 64 or (length_form is None and n > 0xFFFF):
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    elif length_form == 16 or (length_form is None and n >= 126):
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | n])
    if not mask:
        return hdr + payload
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


TEXT, BIN, CLOSE, PING, PONG = 0x81, 0x82, 0x88, 0x89, 0x8A


def ws_seeds():
    whole, bytewise, mixed = b"\x00", b"\x01\x00", b"\x03\x02\x10\x00"
    write("fuzz_ws", "text", b"\x00" + whole + frame(TEXT, b"hello"))
    write(
        "fuzz_ws",
        "fragments_ping_close_bytewise",
        b"\x00"
        + bytewise
        + frame(0x01, b"hel")
        + frame(PING, b"ping")
        + frame(0x00, "lo wö".encode()[:5])
        + frame(0x80, "lo wö".encode()[5:] + b"rld")
        + frame(BIN, bytes(range(200)))
        + frame(CLOSE, b"\x03\xe8bye"),
    )
    write("fuzz_ws", "close_no_code", b"\x00" + whole + frame(TEXT, b"a") + frame(CLOSE, b""))
    write("fuzz_ws", "close_1005", b"\x00" + whole + frame(CLOSE, b"\x03\xed"))
    write("fuzz_ws", "close_one_byte", b"\x00" + whole + frame(CLOSE, b"\x03"))
    write("fuzz_ws", "close_bad_reason_split", b"\x00" + mixed + frame(CLOSE, b"\x0f\xa0ok\xe2\x82"))
    write("fuzz_ws", "unmasked", b"\x00" + whole + frame(TEXT, b"hello", mask=None))
    write("fuzz_ws", "bad_utf8", b"\x00" + whole + frame(TEXT, b"caf\xc3") + frame(TEXT, b"x"))
    write("fuzz_ws", "rsv_without_deflate", b"\x00" + whole + frame(TEXT | 0x40, b"hello"))
    write("fuzz_ws", "too_big_16", b"\x0c" + whole + frame(TEXT, b"x" * 100))
    write("fuzz_ws", "fragmented_too_big_125", b"\x08" + mixed + frame(0x01, b"x" * 100) + frame(0x80, b"y" * 100))
    write("fuzz_ws", "ping_too_long", b"\x00" + whole + frame(PING, b"p" * 126))
    write("fuzz_ws", "len16_not_minimal", b"\x00" + whole + frame(TEXT, b"short", length_form=16))
    write("fuzz_ws", "len64", b"\x00" + mixed + frame(BIN, b"\x00" * 300, length_form=64))
    text = b"the quick brown fox jumps over the lazy dog; " * 4
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    m1 = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
    m2 = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
    write(
        "fuzz_ws",
        "deflate_context_takeover",
        b"\x01" + mixed + frame(TEXT | 0x40, m1[:-4]) + frame(TEXT | 0x40, m2[:-4]) + frame(TEXT, b"plain"),
    )
    z = deflate_raw(text, 9)
    write(
        "fuzz_ws",
        "deflate_no_takeover_fragmented",
        b"\x02" + whole + frame(0x01 | 0x40, z[:10]) + frame(PING, b"") + frame(0x80, z[10:]),
    )
    write("fuzz_ws", "deflate_final_block", b"\x03" + whole + frame(BIN | 0x40, deflate_raw(bytes(range(256)) * 2, 12, True)))
    bomb = deflate_raw(b"\x00" * 200000, 15)
    write("fuzz_ws", "deflate_bomb", b"\x01" + whole + frame(BIN | 0x40, bomb))
    write("fuzz_ws", "deflate_rsv_on_continuation", b"\x01" + whole + frame(0x01, b"ab") + frame(0x80 | 0x40, b"cd"))
    write(
        "fuzz_ws",
        "handler_close_ping_shared",
        bytes([0x20 | 0x40 | 0x10 | 0x01])
        + whole
        + frame(TEXT, b"?are you there " * 5)
        + frame(PONG, b"?are you there ")
        + frame(TEXT, b"!" + b"bye now " * 10)
        + frame(TEXT, b"after close")
        + frame(CLOSE, b"\x03\xe8"),
    )
    # Builder mode: first byte, length byte, payload; the target masks with a zero key.
    built = (
        bytes([0x01, 3]) + b"hel"
        + bytes([0x89, 2]) + b"pi"
        + bytes([0x80, 2]) + b"lo"
        + bytes([0x82, 254, 0x01, 0x00]) + bytes(256)
        + bytes([0x88, 2]) + b"\x03\xe8"
    )
    write("fuzz_ws", "builder", b"\x80" + mixed + built)
    write("fuzz_ws", "builder_deflate", b"\x81" + whole + bytes([0xC1, len(z)]) + z + bytes([0x81, 5]) + b"hello")


# ---- fuzz_utf8: split position (2 bytes), text -------------------------------------------------


def utf8_seeds():
    def w(name, text, split=0):
        write("fuzz_utf8", name, struct.pack(">H", split) + text)

    w("ascii", b"hello, world")
    w("mixed", "héllo wörld ✓ 😀 日本語".encode(), 9)
    w("boundaries", "\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff".encode(), 12)
    w("split_in_4byte", "a😀b".encode(), 3)
    w("overlong_c0", b"a\xc0\x80b")
    w("overlong_e0", b"\xe0\x80\x80")
    w("overlong_f0", b"\xf0\x8f\xbf\xbf")
    w("surrogate", b"\xed\xa0\x80", 1)
    w("above_max", b"\xf4\x90\x80\x80", 2)
    w("f5", b"\xf5\x80\x80\x80")
    w("truncated", b"ok\xe2\x82", 3)
    w("lone_continuation", b"\x80abc")
    w("long_ascii_then_bad", b"x" * 40 + b"\xff" + b"y" * 8, 17)


# ---- fuzz_proto: text_max byte, JSON ---------------------------------------------------------


def proto_seeds():
    big = b"\xff"  # text_max 16 KiB
    examples = {
        "hello": '{"type":"hello","username":"ann","email":"ann@example.org"}',
        "join": '{"type":"join","room":"rust"}',
        "leave": '{"type":"leave","room":"rust"}',
        "message": '{"type":"message","room":"lobby","message":"hi all"}',
        "direct": '{"type":"direct","to":"3f1c0a9e5b7d4e2f8a6c1b0d9e7f5a3c","message":"hi ann"}',
        "direct_user": '{"type":"direct","to_user":"ann@example.org","message":"hi ann"}',
        "direct_to_and_to_user": '{"type":"direct","to":"%s","to_user":"ann","message":"x"}' % CLIENT_ID,
        "who": '{"type":"who","room":"lobby"}',
        "refresh": '{"type":"refresh","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln"}',
        "seed_format": '{"email":"ann@example.org","username":"ann","message":"hello"}',
        "seed_format_bare": '{"message":"hello"}',
        "escapes": '{"type":"message","room":"a.b:c-d_e","message":"line\\nbreak \\u00e9 \\ud83d\\ude00 \\"q\\" \\\\"}',
        "escaped_nul": '{"type":"message","room":"lobby","message":"a\\u0000b"}',
        "escaped_backslash_then_u0000": '{"type":"message","room":"lobby","message":"a\\\\u0000b"}',
        "lone_surrogate": '{"type":"message","room":"lobby","message":"\\ud800"}',
        "duplicate_key": '{"type":"join","room":"a","room":"b"}',
        "unknown_type": '{"type":"dance","room":"lobby"}',
        "type_not_string": '{"type":1,"room":"lobby"}',
        "bad_room": '{"type":"join","room":"no spaces"}',
        "bad_target": '{"type":"direct","to":"3F1C0A9E5B7D4E2F8A6C1B0D9E7F5A3C","message":"x"}',
        "username_control": '{"type":"hello","username":"a\\u0007b"}',
        "username_65": '{"type":"hello","username":"%s"}' % ("u" * 65),
        "trailing_bytes": '{"type":"join","room":"a"} x',
        "trailing_space": '{"type":"join","room":"a"} \r\n',
        "array": '["type","join"]',
        "nested_unknown_fields": '{"type":"join","room":"a","extra":{"deep":[1,2,{"x":null}]}}',
        "who_query": '{"type":"who","room":"lobby","reply_to":"%s"}' % CLIENT_ID,
    }
    for name, text in examples.items():
        write("fuzz_proto", name, big + text.encode())
    write("fuzz_proto", "text_max_3", b"\x03" + examples["message"].encode())
    write("fuzz_proto", "invalid_utf8", big + b'{"type":"message","room":"lobby","message":"caf\xc3"}')
    write("fuzz_proto", "raw_control_in_string", big + b'{"type":"message","room":"lobby","message":"a\x01\tb"}')


# ---- fuzz_jwt: mode, now (5 bytes), leeway (2 bytes), room length and room, token or claims ----


def jwt_seeds():
    def w(name, data, mode=0, now=NOW, leeway=30, room=b"lobby"):
        ctl = bytes([mode]) + now.to_bytes(5, "big") + struct.pack(">H", leeway) + bytes([len(room)]) + room
        write("fuzz_jwt", name, ctl + (data.encode() if isinstance(data, str) else data))

    full = {"sub": "ann", "name": "Ann B.", "exp": NOW + 3600, "nbf": NOW - 60, "rooms": ["lobby", "team-*"]}
    w("valid", jwt({"sub": "ann", "exp": NOW + 3600}))
    w("valid_all_claims", jwt(full), room=b"team-red")
    w("valid_all_claims_room_refused", jwt(full), room=b"random")
    w("valid_rooms_star", jwt({"sub": "bob", "exp": NOW + 60, "rooms": ["*"]}), room=b"any.room")
    w("valid_rooms_empty", jwt({"sub": "bob", "exp": NOW + 60, "rooms": []}))
    w("valid_no_typ_fractional_exp", jwt({"sub": "ann", "exp": NOW + 0.5}, header={"alg": "HS256"}))
    w("valid_utf8_sub", jwt({"sub": "zoë@example.org", "exp": NOW + 60, "extra": {"x": [1, None]}}))
    w("expired", jwt({"sub": "ann", "exp": NOW - 100}))
    w("expired_within_leeway", jwt({"sub": "ann", "exp": NOW - 10}))
    w("expired_huge_leeway", jwt({"sub": "ann", "exp": 0}), leeway=0xFFFF)
    w("not_yet", jwt({"sub": "ann", "exp": NOW + 3600, "nbf": NOW + 100}))
    w("missing_sub", jwt({"exp": NOW + 3600}))
    w("sub_control", jwt('{"sub":"a\\u0007b","exp":%d}' % (NOW + 60)))
    w("escaped_nul_in_sub", jwt('{"sub":"ann\\u0000root","exp":%d}' % (NOW + 60)))
    w("raw_nul_in_sub", jwt('{"sub":"ann\u0000root","exp":%d}' % (NOW + 60)))
    w("too_many_rooms", jwt({"sub": "ann", "exp": NOW + 60, "rooms": ["r%d" % i for i in range(65)]}))
    w("bad_room_pattern", jwt({"sub": "ann", "exp": NOW + 60, "rooms": ["a*b"]}))
    w("alg_none", b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(b'{"sub":"ann","exp":9999999999}') + ".")
    w("alg_hs512", jwt({"sub": "ann", "exp": NOW + 60}, header={"alg": "HS512", "typ": "JWT"}))
    w("crit", jwt({"sub": "ann", "exp": NOW + 60}, header={"alg": "HS256", "crit": ["exp"]}))
    w("typ_other", jwt({"sub": "ann", "exp": NOW + 60}, header={"alg": "HS256", "typ": "at+jwt"}))
    w("other_key", jwt({"sub": "ann", "exp": NOW + 60}, key=OTHER_KEY))
    w("padded_signature", jwt({"sub": "ann", "exp": NOW + 60}) + "=")
    w("four_parts", jwt({"sub": "ann", "exp": NOW + 60}) + ".e30")
    w("garbage", b"not a token at all \xff\x00 ..")
    w("empty", b"")
    # Sign mode: the claims text.
    w("sign_full", json.dumps(full), mode=1, room=b"team-x")
    w("sign_minimal_ws", ' {"sub":"a","exp":%d}\r\n' % (NOW + 1), mode=1)
    w("sign_escaped_nul", '{"sub":"a\\u0000","exp":%d}' % (NOW + 1), mode=1)
    w("sign_escaped_backslash_u0000", '{"sub":"a\\\\u0000","exp":%d}' % (NOW + 1), mode=1)
    w("sign_raw_nul", b'{"sub":"a\x00b","exp":1795241719}', mode=1)
    w("sign_invalid_utf8", b'{"sub":"caf\xc3","exp":1795241719}', mode=1)
    w("sign_array", "[1,2]", mode=1)
    w("sign_trailing", '{"sub":"a","exp":1} x', mode=1)
    w("sign_long", json.dumps({"sub": "a", "exp": NOW, "pad": "x" * 3100}), mode=1)


# ---- fuzz_deflate: flags, limit, split (2 bytes), data -------------------------------------------


def deflate_seeds():
    def w(name, data, flags=0x07, limit=0x40, split=None):
        split = len(data) if split is None else split
        write("fuzz_deflate", name, bytes([flags, limit]) + struct.pack(">H", split) + data)

    offers = {
        "offer_plain": "permessage-deflate",
        "offer_client_bits": "permessage-deflate; client_max_window_bits",
        "offer_all": "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=9",
        "offer_quoted": 'x-webkit-deflate-frame, permessage-deflate; client_max_window_bits="9"',
        "offer_server_8": "permessage-deflate; server_max_window_bits=8, permessage-deflate",
        "offer_duplicate": "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "offer_bad_value": "permessage-deflate; server_max_window_bits=016, permessage-deflate; x=1",
    }
    for name, text in offers.items():
        w(name, text.encode())
    text = b"the quick brown fox jumps over the lazy dog; " * 6
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    m1 = (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    m2 = (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    w("two_messages_takeover", m1 + m2, flags=0x07, limit=0x40, split=len(m1))
    z = deflate_raw(text, 9)
    w("two_messages_reset_w9", z + z, flags=0x09, limit=0x40, split=len(z))
    w("final_block", deflate_raw(text, 15, True), flags=0x07)
    w("final_block_then_4", deflate_raw(text, 15, True) + b"\x00\x00\xff\xff", flags=0x07)
    w("stored", b"\x00\x05\x00\xfa\xffhello")
    w("bomb", deflate_raw(b"\x00" * 100000, 15), flags=0x07, limit=0xFF)
    w("limit_0", deflate_raw(b"x", 15), limit=0)
    w("window_too_far", deflate_raw(bytes(range(256)) * 20 + bytes(range(256)), 15), flags=0x04)


# ---- fuzz_payload: channel length | over-limit, stretch | window, channel, payload --------------


def payload_seeds():
    def w(name, channel, payload, over=0, stretch=0, window=7):
        """window: 0..6 for 9..15, 7 for every window."""
        b1 = window << 1 | (0xF1 if stretch else 0)
        write("fuzz_payload", name, bytes([len(channel) << 1 | over, b1]) + channel + payload)

    room = b"chat:room:lobby"
    msg = (
        '{"type":"message","room":"lobby","id":"85f8eb1839015c27-1","from":"%s",'
        '"username":"ann","email":"ann@example.org","message":"hi all","ts":1795241718751}' % CLIENT_ID
    ).encode()
    presence = (
        '{"type":"presence","room":"lobby","event":"join","client":"%s","username":"guest-f92a50"}' % OTHER_ID
    ).encode()
    who = ('{"type":"who","room":"lobby","reply_to":"%s"}' % CLIENT_ID).encode()
    direct = (
        '{"type":"direct","to":"%s","id":"be1c4b53ae90a2ff-1","from":"%s","username":"ann",'
        '"message":"psst","ts":1795241718751}' % (OTHER_ID, CLIENT_ID)
    ).encode()
    w("message", room, msg)
    w("message_long", room, msg.replace(b"hi all", b"la " * 120))
    w("message_stretched", room, msg, stretch=1, window=6)
    w("message_window_9", room, msg.replace(b"hi all", b"la " * 40), window=0)
    w("presence_over_limit", room, presence, over=1)
    w("presence_truncated_id", room, presence[: presence.index(b'"client":"') + 20], over=1)
    w("who", room, who)
    w("who_bad_reply_to", room, who.replace(CLIENT_ID.encode(), b"x" * 32))
    w("who_prefix_not_json", room, b'{"type":"who",' + b"\xff" * 8)
    w("direct", ("chat:client:" + OTHER_ID).encode(), direct)
    w("direct_user", b"chat:user:ann@example.org", direct.replace(b'"to":"%s"' % OTHER_ID.encode(), b'"to_user":"ann"'))
    w("health", b"chat:health:gw-a-1234", b"17")
    w("other_room", b"chat:room:rust", msg)
    w("not_ours", b"news:today", msg)
    w("binary", room, bytes(range(256)))
    w("empty", room, b"")
    w("ts_huge", room, b'{"type":"message","ts":99999999999999999999999999}')


def main():
    http_seeds()
    ws_seeds()
    utf8_seeds()
    proto_seeds()
    deflate_seeds()
    payload_seeds()
    jwt_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
