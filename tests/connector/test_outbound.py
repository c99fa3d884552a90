"""Outbound HTTP: private targets refused unless allowed; time, size and redirects bounded."""

from __future__ import annotations

import json
import socket
import ssl
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


def self_signed(directory, name: str) -> tuple[str, str]:
    """A certificate for `name` signed by itself, and its key: (cert file, key file)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_https_goes_to_the_checked_address_and_still_verifies_the_host_name(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path, "localhost")
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

        # A name the certificate does not carry is refused, even at the same address.
        with pytest.raises(TransientError, match="failed to connect"):
            outbound.request(
                "GET", f"https://127.0.0.1:{port}/host", allowed=outbound.Allowed.parse("127.0.0.1")
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
