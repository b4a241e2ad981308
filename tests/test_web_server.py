"""`cbir serve` for real: waitress in a child process, requests over loopback, the load check."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

from benchmarks.web import load_check, multipart, queries_from
from cbir.commands.serve import is_loopback
from tests.test_web_api import green_png


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def test_cbir_serve_answers_over_loopback(live_server):
    assert live_server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(live_server + "api/health", timeout=30) as response:
        assert response.headers["Server"] == "cbir"  # waitress, with our ident
        assert json.load(response)["index"] == "ready"
    body, ctype = multipart({"method": "fusion", "k": "25"}, "image", "q.png", green_png())
    status, data, _ = post(live_server + "api/search", body, ctype)
    assert status == 200 and len(json.loads(data)["results"]) == 25
    with urllib.request.urlopen(live_server, timeout=30) as response:
        assert b'id="drop-zone"' in response.read()


def test_uploads_over_the_limit_are_413_through_waitress(live_server):
    # Over the 1 MB limit: the app answers with its JSON message.
    body, ctype = multipart({"k": "10"}, "image", "big.png", b"\0" * (1024 * 1024 + 10))
    status, data, content_type = post(live_server + "api/search", body, ctype)
    assert status == 413 and content_type == "application/json"
    assert (
        json.loads(data)["error"]
        == "the upload is larger than the limit of 1 MB (CBIR_MAX_UPLOAD_MB)"
    )
    # Over twice the limit, waitress refuses from the headers alone, before any body is sent.
    parts = urllib.parse.urlsplit(live_server)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(
            b"POST /api/search HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {3 * 1024 * 1024}\r\n\r\n".encode()
        )
        assert conn.recv(100).startswith(b"HTTP/1.1 413 ")


def test_load_check_runs_concurrent_clients_without_errors(live_server):
    method, image, ids = queries_from(live_server, None)
    assert method == "cnn" and image.startswith(b"\x89PNG") and len(ids) == 80
    report = load_check(live_server, upload=image, ids=ids, method=method, clients=4, seconds=1.0)
    assert report.errors == 0, report.error_examples
    assert (
        report.requests == report.uploads + report.by_id and report.uploads > 0 and report.by_id > 0
    )
    assert 0 < report.p50_ms <= report.p95_ms <= report.p99_ms
    assert "errors 0" in "\n".join(report.lines())


def test_serve_refuses_a_port_in_use(cli, web_index):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli("serve", "--store", web_index.store, "--port", port)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be from 0 to 65535"),
        (["--threads", "0"], "--threads must be"),
    ],
)
def test_serve_refuses_bad_options(cli, args, message):
    code, _, err = cli("serve", *args)
    assert code == 2 and message in err


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
