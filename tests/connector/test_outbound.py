"""Outbound HTTP: private targets refused unless allowed; time, size and redirects bounded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from connector import outbound
from connector.errors import ConfigurationError, TransientError, ValidationError
from tests.conftest import REDIS_URL

LOCAL = outbound.Allowed.parse("127.0.0.1")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        routes = {
            "/ok": (200, json.dumps({"ok": True}).encode(), {"Content-Type": "application/json"}),
            "/teapot": (418, b"no", {}),
            "/busy": (503, b"", {}),
            "/limited": (429, b"", {"Retry-After": "7"}),
            "/hop": (302, b"", {"Location": "/ok"}),
            "/loop": (302, b"", {"Location": "/loop"}),
            "/private": (302, b"", {"Location": "http://127.0.0.2:9/x"}),
            "/big": (200, b"x" * 5000, {}),
        }
        if self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late")
            return
        self._send(*routes.get(self.path, (404, b"", {})))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        echo = {
            "got": json.loads(self.rfile.read(length) or b"null"),
            "auth": self.headers.get("Authorization"),
        }
        self._send(201, json.dumps(echo).encode(), {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_json_answers_are_parsed_and_the_body_and_headers_sent(server):
    answer = outbound.request(
        "POST",
        f"{server}/echo",
        allowed=LOCAL,
        headers={"Authorization": "Bearer t"},
        payload={"a": 1},
    )
    assert answer.status == 201
    assert answer.body == {"got": {"a": 1}, "auth": "Bearer t"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/x",
        "http://localhost:1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:1/x",
        "http://10.0.0.1/x",
    ],
)
def test_private_loopback_and_link_local_targets_are_refused_unless_allowed(url):
    with pytest.raises(ConfigurationError, match="non-public address"):
        outbound.request("GET", url, allowed=outbound.Allowed())


def test_a_redirect_to_a_private_host_is_refused_even_from_an_allowed_one(server):
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.2"):
        outbound.request("GET", f"{server}/private", allowed=LOCAL)


def test_redirects_are_followed_but_bounded(server):
    assert outbound.request("GET", f"{server}/hop", allowed=LOCAL).body == {"ok": True}
    with pytest.raises(ValidationError, match="more than 5 redirects"):
        outbound.request("GET", f"{server}/loop", allowed=LOCAL)


def test_5xx_429_and_timeouts_are_transient_and_carry_retry_after(server):
    with pytest.raises(TransientError, match="answered 503"):
        outbound.request("GET", f"{server}/busy", allowed=LOCAL)
    with pytest.raises(TransientError) as limited:
        outbound.request("GET", f"{server}/limited", allowed=LOCAL)
    assert limited.value.retry_after == 7.0
    with pytest.raises(TransientError, match="timed out"):
        outbound.request("GET", f"{server}/slow", allowed=LOCAL, timeout=(1.0, 0.2))


def test_other_4xx_answers_are_returned_and_big_answers_refused(server):
    assert outbound.request("GET", f"{server}/teapot", allowed=LOCAL).status == 418
    with pytest.raises(ValidationError, match="larger than 1000 bytes"):
        outbound.request("GET", f"{server}/big", allowed=LOCAL, max_bytes=1000)


def test_non_http_urls_are_refused():
    with pytest.raises(ValidationError, match="not an http"):
        outbound.request("GET", "file:///etc/passwd", allowed=LOCAL)


def test_the_rate_limit_is_shared_and_says_when_to_come_back():
    client = redis.Redis.from_url(REDIS_URL)
    client.delete("puente:rate:test-conn")
    limiter = outbound.RateLimiter(client)
    limiter.wait("test-conn", per_second=0.5)  # the first call goes at once
    with pytest.raises(TransientError) as busy:
        limiter.wait("test-conn", per_second=0.5, max_wait=0.05)
    assert 1.0 < busy.value.retry_after <= 2.0
    client.delete("puente:rate:test-conn")
    client.close()
