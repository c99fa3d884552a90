"""Outbound HTTP: private targets refused unless allowed; time, size and redirects bounded."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

import pytest
import redis

from connector import connections, messages, outbound
from connector.errors import ConfigurationError, TransientError, ValidationError
from connector.redaction import redact
from tests.certificates import tls_files
from tests.conftest import REDIS_URL

LOCAL = outbound.Allowed.parse("127.0.0.1")


class Handler(BaseHTTPRequestHandler):
    requests_seen = 0  # every request the server answered, whatever its path

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
        type(self).requests_seen += 1
        if self.path == "/host":
            host = json.dumps({"host": self.headers.get("Host")}).encode()
            self._send(200, host, {"Content-Type": "application/json"})
            return
        routes = {
            "/ok": (200, json.dumps({"ok": True}).encode(), {"Content-Type": "application/json"}),
            "/teapot": (418, b"no", {}),
            "/busy": (503, b"", {}),
            "/unfinished": (507, b"", {}),
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
        if self.path == "/headers":  # every header that arrived
            seen = {k.lower(): v for k, v in self.headers.items()}
            self._send(200, json.dumps(seen).encode(), {"Content-Type": "application/json"})
            return
        if self.path == "/whoami":  # what identified the caller
            seen = {h: self.headers.get(h) for h in ("Authorization", "X-Api-Key", "Cookie")}
            self._send(200, json.dumps(seen).encode(), {"Content-Type": "application/json"})
            return
        if self.path.startswith("/away/"):  # /away/<url, quoted>: redirect there
            self._send(302, b"", {"Location": unquote(self.path[len("/away/") :])})
            return
        if self.path == "/cut":  # promises 100 bytes, sends 10 and hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path == "/trickle":  # a byte every 0.2 s, each read well within its timeout
            self.send_response(200)
            self.send_header("Content-Length", "20")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
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
        "http://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/x",  # IPv4-compatible
        "http://[fec0::1]/x",  # site-local (deprecated, still routed inside some networks)
        "http://[64:ff9b:1::808:808]/x",  # local-use NAT64 (RFC 8215), even of a public IPv4
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
    with pytest.raises(ConfigurationError, match="not an http"):
        outbound.request("GET", "file:///etc/passwd", allowed=LOCAL)


@pytest.fixture(scope="module")
def other_server() -> Iterator[str]:
    """A second server: another origin than `server` (another port)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "trick",
    [
        "http://127.0.0.1:{port}\\@93.184.216.34/ok",  # read as 93.184.216.34 by urlsplit
        "http://93.184.216.34@127.0.0.1:{port}/ok",
        "http://127.0.0.1:{port}/ok x",
    ],
    ids=["backslash-userinfo", "userinfo", "space"],
)
def test_urls_that_parsers_could_read_two_ways_are_refused_before_anything_is_sent(server, trick):
    port = int(server.rsplit(":", 1)[1])
    seen_before = Handler.requests_seen
    with pytest.raises(ConfigurationError, match=r"not a valid URL|user name or password"):
        outbound.request("GET", trick.format(port=port), allowed=outbound.Allowed())
    assert Handler.requests_seen == seen_before


def test_credentials_and_identifying_headers_never_follow_a_redirect_elsewhere(
    server, other_server
):
    secret = {"X-Api-Key": "k-123"}
    mine = {"Authorization": "Bearer mine", "Cookie": "s=1"}

    same = outbound.request(
        "GET",
        f"{server}/away/{quote('/whoami')}",
        allowed=LOCAL,
        headers=mine,
        credentials=secret,
        scope=f"{server}/",
    )
    assert same.body == {"Authorization": "Bearer mine", "X-Api-Key": "k-123", "Cookie": "s=1"}

    elsewhere = outbound.request(
        "GET",
        f"{server}/away/{quote(other_server + '/whoami', safe='')}",
        allowed=LOCAL,
        headers=mine,
        credentials=secret,
        scope=f"{server}/",
    )
    assert elsewhere.url == f"{other_server}/whoami"
    assert elsewhere.body == {"Authorization": None, "X-Api-Key": None, "Cookie": None}

    narrow = outbound.request(  # the same origin, out of the connection's base path
        "GET",
        f"{server}/whoami",
        allowed=LOCAL,
        credentials=secret,
        scope=f"{server}/api/",
    )
    assert narrow.body["X-Api-Key"] is None


@pytest.mark.parametrize(
    ("url", "inside"),
    [
        ("https://api.crm.example/v1", True),
        ("https://API.crm.example:443/v1/deals/7", True),
        ("https://api.crm.example/v10", False),
        ("https://api.crm.example/", False),
        ("https://api.crm.example.evil.com/v1", False),
        ("https://api.crm.example@evil.com/v1", False),
        ("https://api.crm.example:443@evil.com/v1", False),
        ("http://api.crm.example/v1", False),
        ("https://api.crm.example:8443/v1", False),
    ],
)
def test_a_url_is_within_a_connection_only_on_its_origin_and_under_its_path(url, inside):
    assert outbound.within(url, "https://api.crm.example/v1/") is inside


def test_an_answer_that_breaks_off_or_trickles_past_the_deadline_is_transient(server):
    with pytest.raises(TransientError, match="broke off"):
        outbound.request("GET", f"{server}/cut", allowed=LOCAL)
    started = time.monotonic()
    with pytest.raises(TransientError, match="took too long"):
        outbound.request("GET", f"{server}/trickle", allowed=LOCAL, total=0.5)
    assert time.monotonic() - started < 2.0  # cut at the deadline, not after 4 s of trickle


def test_every_5xx_is_transient(server):
    with pytest.raises(TransientError, match="answered 507"):
        outbound.request("GET", f"{server}/unfinished", allowed=LOCAL)


def test_retry_after_is_read_in_seconds_or_as_a_date_and_kept_within_a_day():
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert outbound.retry_after("7") == 7.0
    assert outbound.retry_after("Sat, 28 Nov 2026 12:01:30 GMT", now) == 90.0
    assert outbound.retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now) == 0.0  # past: now
    assert outbound.retry_after("1e12") == outbound.MAX_RETRY_AFTER
    assert outbound.retry_after("inf") is None
    assert outbound.retry_after("soon") is None


def test_a_refused_call_does_not_take_a_slot_of_the_rate_limit():
    client = redis.Redis.from_url(REDIS_URL)
    client.delete("puente:rate:test-slots")
    limiter = outbound.RateLimiter(client)
    limiter.wait("test-slots", per_second=0.5)
    taken = client.get("puente:rate:test-slots")
    for _ in range(3):
        with pytest.raises(TransientError):
            limiter.wait("test-slots", per_second=0.5, max_wait=0.05)
    assert client.get("puente:rate:test-slots") == taken  # the next slot is still 2 s away
    assert 2 <= client.ttl("puente:rate:test-slots") <= 4
    client.delete("puente:rate:test-slots")
    client.close()


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


def test_a_host_that_resolves_elsewhere_after_its_check_is_not_followed_there(server, monkeypatch):
    """DNS rebinding: 'crm.example' answers an allowed address for the check, then the
    address of a server that must not be reached. The request goes where the check looked."""
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1"])  # checked, then rebound

    def rebinding(host, *args, **kwargs):
        if host != "crm.example":
            return real(host, *args, **kwargs)
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    seen_before = Handler.requests_seen

    with pytest.raises(TransientError, match="failed to connect"):  # nobody on 127.0.0.2
        outbound.request(
            "GET", f"http://crm.example:{port}/ok", allowed=outbound.Allowed.parse("127.0.0.2")
        )

    assert Handler.requests_seen == seen_before  # the server on 127.0.0.1 was never reached
    assert next(answers) == "127.0.0.1"  # only the check resolved the name


def test_the_request_names_its_host_although_it_goes_to_the_checked_address(server):
    port = int(server.rsplit(":", 1)[1])

    answer = outbound.request(
        "GET", f"http://localhost:{port}/host", allowed=outbound.Allowed.parse("localhost")
    )

    assert answer.body == {"host": f"localhost:{port}"}


def test_https_goes_to_the_checked_address_and_still_verifies_the_host_name(tmp_path, monkeypatch):
    cert, key = (str(f) for f in tls_files(tmp_path, "localhost", dns="localhost"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)  # trust this certificate, for this test
    port = httpd.server_port
    try:
        # Connected to 127.0.0.1, the certificate is checked against "localhost": it holds.
        answer = outbound.request(
            "GET", f"https://localhost:{port}/host", allowed=outbound.Allowed.parse("localhost")
        )
        assert answer.body == {"host": f"localhost:{port}"}

        # A name the certificate does not carry is refused, even at the same address: a
        # configuration to fix, not a failure to retry.
        with pytest.raises(ConfigurationError, match=r"the TLS check of 127\.0\.0\.1 failed"):
            outbound.request(
                "GET", f"https://127.0.0.1:{port}/host", allowed=outbound.Allowed.parse("127.0.0.1")
            )
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_headers_the_flow_set_never_follow_a_redirect_to_another_origin(server, other_server):
    """Another port, another host name (same port), and back: once the chain has left the
    first origin, only the headers that say what the body is and what is wanted still go."""
    port = int(server.rsplit(":", 1)[1])
    allowed = outbound.Allowed.parse("127.0.0.1,localhost")
    mine = {
        "Authorization": "Bearer mine",
        "X-Api-Key": "k-123",
        "X-Tenant": "acme",
        "Accept": "application/json",
    }
    own = {"authorization", "x-api-key", "x-tenant"}

    def seen(url: str) -> dict:
        return outbound.request("GET", url, allowed=allowed, headers=mine).body

    assert own <= set(seen(f"{server}/away/{quote('/headers')}"))  # same origin: all go
    back = f"{server}/headers"
    for chain in (
        f"{other_server}/headers",  # another port
        f"http://localhost:{port}/headers",  # another host, same port
        f"{other_server}/away/{quote(back, safe='')}",  # out and back to the first origin
    ):
        arrived = seen(f"{server}/away/{quote(chain, safe='')}")
        assert not own & set(arrived), chain
        assert arrived["accept"] == "application/json"


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.com/",
        "http://[::1/",
        "http://[::1]]/",
        "http://:80/",
        "http://" + "a" * 64 + ".example/",  # a label over 63 characters
        "http://" + ".".join(["a" * 60] * 5) + "/",  # a name over 253 characters
        "http://a..example/",  # an empty label
        "http://xn--a.example/",  # not Punycode: an IDNA error
        "http://exa%20mple.com/",
        "http://\u2100.example/",  # NFKC turns it into "a/c": urlsplit refuses it
    ],
)
def test_a_url_whose_host_cannot_be_read_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError, match=r"not a valid URL|no host"):
        outbound.request("GET", url, allowed=outbound.Allowed())


def closed_port() -> int:
    """A port of 127.0.0.1 nobody listens on (taken, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


QUERY_SECRET = "k3y-0f-the-acc0unt"


@pytest.mark.parametrize(
    ("call", "kind", "english", "spanish", "field"),
    [
        (
            lambda server: outbound.request(
                "GET", f"ftp://files.example/x?api_key={QUERY_SECRET}", allowed=LOCAL
            ),
            ConfigurationError,
            "is not an http(s) URL",
            "«ftp://files.example/x» no es una dirección web: debe empezar por https://",
            "url",
        ),
        (
            lambda server: outbound.request(
                "GET", f"http://10.0.0.1/x?api_key={QUERY_SECRET}", allowed=outbound.Allowed()
            ),
            ConfigurationError,
            "resolves to a non-public address (10.0.0.1)",
            "No se llama a 10.0.0.1: es una dirección privada o local",
            "url",
        ),
        (
            lambda server: outbound.request(
                "GET", f"{server}/slow", allowed=LOCAL, timeout=(1.0, 0.2)
            ),
            TransientError,
            "timed out",
            "no ha respondido a tiempo. Suele ser pasajero: inténtalo más tarde",
            "",
        ),
        (
            lambda server: outbound.request(
                "GET", f"http://127.0.0.1:{closed_port()}/x?token={QUERY_SECRET}", allowed=LOCAL
            ),
            TransientError,
            "failed to connect",
            "No se puede conectar con 127.0.0.1:",
            "",
        ),
        (
            lambda server: outbound.request("GET", f"{server}/loop", allowed=LOCAL),
            ValidationError,
            "more than 5 redirects",
            "manda a otra dirección más de 5 veces seguidas",
            "",
        ),
    ],
    ids=["not-http", "private-address", "timeout", "closed-port", "redirect-loop"],
)
def test_each_refusal_says_in_spanish_too_what_is_wrong_and_what_to_do(
    server, call, kind, english, spanish, field
):
    with pytest.raises(kind) as caught:
        call(server)

    error = caught.value
    assert english in error.message  # the English stays as logs and API answers know it
    [said] = error.errors
    assert said.path == field
    assert said.text("en") == error.message
    assert spanish in said.text("es")
    # What the run log keeps (masked) and shows a Spanish reader, and "Probar conexión" says.
    stored = redact(error.as_dict())
    assert spanish in messages.localized(stored["errors"][0], "es")
    assert spanish in connections.spanish(error)
    assert QUERY_SECRET not in said.text("es") + str(stored)


def test_a_query_secret_or_a_password_in_a_bad_url_is_never_shown_in_spanish():
    with pytest.raises(ConfigurationError) as caught:
        outbound.request("GET", "http://bob:hunter2@crm.example/x", allowed=LOCAL)
    assert "hunter2" not in caught.value.errors[0].text("es")
    assert "guarda las credenciales en una conexión" in caught.value.errors[0].text("es")
    with pytest.raises(ConfigurationError) as spaced:
        outbound.request("GET", f"http://crm.example/a b?secret={QUERY_SECRET}", allowed=LOCAL)
    assert QUERY_SECRET not in spaced.value.errors[0].text("es")
    assert "«http://crm.example/a b» no es válida" in spaced.value.errors[0].text("es")
