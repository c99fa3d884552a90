"""Outbound HTTP for actions: no private targets unless allowed, bounded in time and size.

A flow author may point an action at any URL, so every request (and every redirect hop) is
checked before it leaves: the host must resolve only to public addresses, or be allowed in
configuration (PUENTE_HTTP_ALLOW: hosts or CIDR ranges, e.g. "127.0.0.1,10.0.0.0/8").
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from redis import Redis
from redis.exceptions import WatchError
from requests.adapters import HTTPAdapter

from connector.errors import ConfigurationError, TransientError, ValidationError

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 1024 * 1024
TIMEOUT = (5.0, 20.0)  # connect, read (seconds)
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowed:
    """Targets allowed although they are not public (hosts by name, and address ranges)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Allowed:
        hosts: set[str] = set()
        networks: list[Network] = []
        for item in (text or "").replace(";", ",").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower())
        return cls(frozenset(hosts), tuple(networks))

    def admits(self, host: str, addresses: Iterable[Address]) -> bool:
        if host.lower() in self.hosts:
            return True
        return all(any(a in net for net in self.networks) for a in addresses)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON when the answer is JSON, else text
    url: str


def _addresses(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {host!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_target(url: str, allowed: Allowed) -> Address:
    """Refuse URLs that are not http(s) or that reach private, loopback or link-local hosts;
    the address to connect to (IPv4 first), the one that was checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(parts.hostname, port)
    if not allowed.admits(parts.hostname, addresses):
        private = [a for a in addresses if not a.is_global or a.is_multicast]
        if private:
            raise ConfigurationError(
                f"{parts.hostname} resolves to a non-public address ({private[0]}): requests "
                "to private, loopback or link-local targets are refused unless allowed in "
                "PUENTE_HTTP_ALLOW"
            )
    return min(addresses, key=lambda a: a.version)


class _Pinned(HTTPAdapter):
    """Connects to the address that was checked, never to what a second DNS lookup says: a
    host may resolve to a public address for the check and to a private one a moment later
    (DNS rebinding). TLS still sends the host's name and checks its certificate against it."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname
        super().__init__()

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        pool_kwargs.update(server_hostname=self._hostname, assert_hostname=self._hostname)
        super().init_poolmanager(*args, **pool_kwargs)


def _pinned(url: str, address: Address) -> tuple[str, str]:
    """`url` with its host replaced by `address`, and the Host header that names the host."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = (f"{userinfo}@" if userinfo else "") + literal
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), host


def request(
    method: str,
    url: str,
    *,
    allowed: Allowed,
    headers: Mapping[str, str] | None = None,
    payload: Any = None,
    timeout: tuple[float, float] = TIMEOUT,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> Answer:
    """Send one request, following at most MAX_REDIRECTS checked redirects; each hop goes to
    the address its check admitted.

    Timeouts, connection errors, 5xx and 429 raise TransientError (with Retry-After when the
    server sent one); other 4xx answers are returned for the caller to judge.
    """
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        target, host = _pinned(url, check_target(url, allowed))
        with requests.Session() as http:
            http.mount(f"{parts.scheme}://", _Pinned(parts.hostname or ""))
            try:
                response = http.request(
                    method,
                    target,
                    headers={**(headers or {}), "Host": host},
                    json=payload,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.Timeout:
                raise TransientError(f"{method} {url} timed out") from None
            except requests.ConnectionError as exc:
                raise TransientError(f"{method} {url} failed to connect: {exc}") from None
            with response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    if response.status_code in (301, 302, 303):  # the body is not sent again
                        method, payload = ("GET" if method != "HEAD" else method), None
                    continue
                body = _read(response, max_bytes, method, url)
                if response.status_code in RETRYABLE:
                    raise TransientError(
                        f"{method} {url} answered {response.status_code}",
                        retry_after=_retry_after(response.headers.get("retry-after")),
                    )
                return Answer(response.status_code, dict(response.headers), body, url)
    raise ValidationError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")


def _read(response: requests.Response, max_bytes: int, method: str, url: str) -> Any:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > max_bytes:
            raise ValidationError(f"{method} {url}: the answer is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if "json" in (response.headers.get("content-type") or "") and raw:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(response.encoding or "utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP dates are rare from APIs; the backoff applies instead


class RateLimiter:
    """At most `per_second` calls a second per connection, across every worker (Redis)."""

    def __init__(self, redis: Redis, prefix: str = "puente:rate") -> None:
        self.redis, self.prefix = redis, prefix

    def wait(self, key: str, per_second: float, max_wait: float = 30.0) -> None:
        """Block until a call is allowed; TransientError if that would take over max_wait."""
        if per_second <= 0:
            return
        interval = 1.0 / per_second
        deadline = time.monotonic() + max_wait
        name = f"{self.prefix}:{key}"
        while True:
            now = time.time()
            # The slot after the last one given, or now; claimed with a compare-and-set loop.
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(name)
                    last = float(pipe.get(name) or 0)
                    slot = max(now, last + interval)
                    pipe.multi()
                    pipe.set(name, repr(slot), ex=max(1, int(interval * 10) + 1))
                    pipe.execute()
                except WatchError:  # another worker took a slot meanwhile: try again
                    continue
            delay = slot - now
            if delay <= 0:
                return
            if time.monotonic() + delay > deadline:
                raise TransientError(
                    f"rate limit of {per_second}/s for {key}: busy", retry_after=delay
                )
            time.sleep(delay)
            return
