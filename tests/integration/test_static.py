"""Static files from the public dir: types, HEAD, 404s, directories, and no path escapes."""

import pytest

from gwtest import (FILES, INDEX_HTML, SECRET, SUB_INDEX, HttpConn, build_request, http_get,
                    http_request)


def raw_get(port, target, method="GET"):
    """Send the target byte for byte (no client-side normalisation)."""
    raw = (f"{method} ".encode() + target + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode()
           + b"\r\nConnection: close\r\n\r\n")
    return http_request(port, raw, method=method)


def test_root_is_index(gw):
    r = http_get(gw.port, "/")
    assert r.status == 200, r
    assert r.header("Content-Type", "").lower().replace(" ", "") == "text/html;charset=utf-8", r
    assert r.body == INDEX_HTML
    assert int(r.header("Content-Length")) == len(INDEX_HTML)


def test_root_query_ignored(gw):
    r = http_get(gw.port, "/?utm=1&x=%2e%2e")
    assert r.status == 200, r
    assert r.body == INDEX_HTML


@pytest.mark.parametrize("path,ctype", [
    ("/index.html", "text/html; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/logo.png", "image/png"),
    ("/icon.svg", "image/svg+xml"),
    ("/data.json", "application/json"),
    ("/favicon.ico", "image/x-icon"),
    ("/blob.qqq", "application/octet-stream"),
    ("/noext", "application/octet-stream"),
])
def test_content_types(gw, path, ctype):
    r = http_get(gw.port, path)
    assert r.status == 200, r
    got = r.header("Content-Type", "").lower().replace(" ", "")
    assert got == ctype.replace(" ", ""), f"{path}: Content-Type {r.header('Content-Type')!r}"
    assert r.body == FILES[path.lstrip("/")]


def test_query_ignored_for_files(gw):
    r = http_get(gw.port, "/style.css?v=3")
    assert r.status == 200, r
    assert r.body == FILES["style.css"]


def test_percent_encoded_name(gw):
    r = http_get(gw.port, "/hello%20world.html")
    assert r.status == 200, r
    assert r.body == FILES["hello world.html"]


def test_large_file_exact(gw):
    r = http_get(gw.port, "/big.bin", timeout=15)
    assert r.status == 200, r
    assert len(r.body) == len(FILES["big.bin"])
    assert r.body == FILES["big.bin"]


@pytest.mark.parametrize("path", ["/", "/style.css", "/logo.png", "/big.bin", "/sub/"])
def test_head_matches_get(gw, path):
    with HttpConn(gw.port) as c:
        c.send(build_request("HEAD", path, host=f"127.0.0.1:{gw.port}")
               + build_request("GET", path, [("Connection", "close")],
                               host=f"127.0.0.1:{gw.port}"))
        h = c.read_response(method="HEAD")
        g = c.read_response()
    assert h.status == 200 and g.status == 200, (h, g)
    assert h.body == b""
    assert h.header("Content-Length") == g.header("Content-Length") == str(len(g.body))
    assert h.header("Content-Type") == g.header("Content-Type")


def test_head_no_body_on_wire(gw):
    """After a HEAD response on a connection that closes, no body bytes follow."""
    with HttpConn(gw.port) as c:
        c.send(build_request("HEAD", "/index.html", [("Connection", "close")],
                             host=f"127.0.0.1:{gw.port}"))
        h = c.read_response(method="HEAD")
        assert h.status == 200
        assert c.wait_closed(3) == b"", "HEAD response carried a body"


@pytest.mark.parametrize("path", ["/missing.html", "/sub/missing.css", "/nodir/x.js",
                                  "/index.html/", "/index.html/x"])
def test_missing_404(gw, path):
    r = http_get(gw.port, path)
    assert r.status == 404, r


def test_directory_with_index(gw):
    r = http_get(gw.port, "/sub/")
    assert r.status == 200, r
    assert r.body == SUB_INDEX
    assert r.header("Content-Type", "").lower().startswith("text/html")


def test_directory_without_slash(gw):
    r = http_get(gw.port, "/sub")
    if r.status in (301, 302, 307, 308):
        assert (r.header("Location") or "").endswith("/sub/"), r
    else:
        assert r.status == 200, r
        assert r.body == SUB_INDEX


def test_directory_without_index_404(gw):
    r = http_get(gw.port, "/emptydir/")
    assert r.status == 404, r


def test_nested_file(gw):
    r = http_get(gw.port, "/sub/deeper/x.css")
    assert r.status == 200, r
    assert r.body == b"x{}\n"


@pytest.mark.hostile
@pytest.mark.parametrize("target", [
    b"/../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/..%2fsecret.txt",
    b"/..%2Fsecret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/.%2e/secret.txt",
    b"/sub/../../secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/sub/..%2f..%2fsecret.txt",
    b"/./../secret.txt",
    b"//../secret.txt",
    b"/..\\secret.txt",
    b"/%2e%2e%5csecret.txt",
    b"/../outside/index.html",
    b"/../../../../../../../../etc/passwd",
    b"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/link-out.html",
    b"/rel-link-out.html",
    b"/dirlink/secret.txt",
    b"/dirlink/",
    b"/index.html%00",
    b"/index.html%00.png",
    b"/%00",
    b"/%00/../secret.txt",
    b"/..%00/secret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%252e%252e/secret.txt",
    b"/.%2e%2f.%2e%2fsecret.txt",
    b"/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_no_escape(gw, target, method):
    r = raw_get(gw.port, target, method=method)
    assert r.status in (400, 404), f"{target!r} answered {r.status}: {r!r}"
    assert SECRET not in r.body
    assert b"root:" not in r.body


@pytest.mark.hostile
@pytest.mark.parametrize("target", [b"/%zz", b"/%2", b"/%", b"/abc%g1", b"/%%32%65"])
def test_bad_percent_encoding(gw, target):
    r = raw_get(gw.port, target)
    assert r.status in (400, 404), r


@pytest.mark.hostile
def test_absolute_form_target_no_escape(gw):
    r = raw_get(gw.port, b"http://127.0.0.1/../secret.txt")
    assert r.status in (400, 404), r
    assert SECRET not in r.body


@pytest.mark.hostile
def test_long_path_404(gw):
    r = raw_get(gw.port, b"/" + b"a/" * 2000 + b"x.html")
    assert r.status in (400, 404, 414, 431), r
