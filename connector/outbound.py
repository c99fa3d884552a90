"""Outbound HTTP for actions: no private targets unless allowed, bounded in time and size.

A flow author may point an action at any URL, so every request (and every redirect hop) is
checked before it leaves: the host must resolve only to public addresses, or be allowed in
configuration (PUENTE_HTTP_ALLOW: hosts or CIDR ranges, e.g. "127.0.0.1,10.0.0.0/8").

Every error says what is wrong and how to fix it twice: its English `message` (logs, API
answers) and, in `errors`, a text in English and Spanish for the person reading the run log or
"Probar conexión" (connector.errors.Said), on the URL field when the URL is what to fix. The
Spanish names the address without its query (a key may ride there) or user name; the English
quotes it whole, masked later where it is stored (connector.redaction).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import requests
import urllib3.util
from redis import Redis
from redis.exceptions import WatchError
from requests.adapters import HTTPAdapter

from connector.errors import (
    ConfigurationError,
    PuenteError,
    Said,
    TransientError,
    ValidationError,
)

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 1024 * 1024
TIMEOUT = (5.0, 20.0)  # connect, and each read (seconds)
TOTAL_SECONDS = 60.0  # the whole answer, however slowly it trickles in
RETRYABLE = {408, 425, 429}  # and every 5xx
MAX_RETRY_AFTER = 24 * 3600.0  # a server asking for longer is answered after a day
# The only headers of the caller that follow a redirect to another origin: they say what the
# body is and what answer is wanted. Any other (Authorization, an API key, a tenant, whatever
# header a flow set) was meant for the first origin alone.
NEUTRAL = {"accept", "content-type", "user-agent"}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
URL_FIELD = "url"  # where a flow's step (http.request) or a caller writes the address
E = TypeVar("E", bound=PuenteError)


def _said(error: type[E], en: str, es: str, path: str = "", **kwargs: Any) -> E:
    """`error` with `en` as its message, and both texts for a person (`errors[0].text('es')`,
    what the run log and "Probar conexión" show in Spanish), about the field at `path`."""
    return error(en, errors=[Said(en, es).field_error(path)], **kwargs)


def _shown(url: str) -> str:
    """The address as a message may show it to a person: without its query and fragment (a
    key may ride there) or a user name and password, and not endless."""
    text = url.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = text.partition("://")
    if sep:
        netloc, slash, path = rest.partition("/")
        text = f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 120 else text[:119] + "…"


def _size(n: int) -> str:
    """A byte count as people read it: 1 MB, 256 KB, 1000 bytes."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


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
        raise _said(
            TransientError,
            f"cannot resolve {host!r}: {exc}",
            f"No se encuentra el servidor {host}: comprueba que la dirección está bien escrita; "
            "si lo está, puede ser un fallo pasajero: inténtalo más tarde.",
            URL_FIELD,
        ) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def parse_target(url: str) -> SplitResult:
    """The parts of `url` when it is a plain http(s) URL whose host every reader reads alike.

    Anything else is a ConfigurationError: the URL is written in a flow or a connection, and
    no retry can mend it.
    """
    if "\\" in url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _invalid(
            url,
            "it has a backslash, a space or a control character",
            "tiene una barra invertida (\\), un espacio o un carácter invisible. Escríbela "
            "seguida, sin espacios, como https://api.ejemplo.com/ruta",
        )
    try:
        parts = urlsplit(url)
        _origin(parts)  # reads the port
    except ValueError as exc:  # "[::1", a port that is no number, NFKC tricks
        raise _invalid(
            url,
            f"its host or port cannot be read ({exc})",
            "no se entiende el nombre del servidor o el puerto. Debe ser como "
            "https://api.ejemplo.com/ruta (o https://api.ejemplo.com:8443/ruta con puerto)",
        ) from None
    if parts.scheme not in ("http", "https"):
        raise _said(
            ConfigurationError,
            f"{url!r} is not an http(s) URL",
            f"«{_shown(url)}» no es una dirección web: debe empezar por https:// (o http://), "
            "como https://api.ejemplo.com/ruta.",
            URL_FIELD,
        )
    if not parts.hostname:
        raise _said(
            ConfigurationError,
            f"{url!r} has no host name",
            f"A la dirección «{_shown(url)}» le falta el nombre del servidor: debe ser como "
            "https://api.ejemplo.com/ruta.",
            URL_FIELD,
        )
    if "@" in parts.netloc:
        raise _said(
            ConfigurationError,
            f"{url!r} carries a user name or password: put credentials in a connection",
            "La dirección lleva un usuario o una contraseña: quítalos de la dirección y guarda "
            "las credenciales en una conexión (Conexiones).",
            URL_FIELD,
        )
    problem = _host_problem(parts.hostname)
    if problem:
        raise _invalid(
            url,
            f"its host {parts.hostname!r} {problem}",
            f"«{parts.hostname}» no es un nombre de servidor válido. Revisa cómo está "
            "escrito (letras, números, guiones y puntos, como api.ejemplo.com)",
        )
    # The HTTP library reads the URL again: it must see the host that is checked here.
    try:
        again = (urllib3.util.parse_url(url).host or "").strip("[]").lower()
    except ValueError as exc:
        raise _invalid(
            url,
            f"its host cannot be read ({exc})",
            "no se entiende el nombre del servidor. Debe ser como https://api.ejemplo.com/ruta",
        ) from None
    if again != parts.hostname:
        raise _said(
            ConfigurationError,
            f"{url!r} names its host ambiguously",
            f"La dirección «{_shown(url)}» se puede leer de dos maneras y no se sabe a qué "
            "servidor va: escríbela de forma sencilla, como https://api.ejemplo.com/ruta.",
            URL_FIELD,
        )
    return parts


def _invalid(url: str, why: str, why_es: str) -> ConfigurationError:
    return _said(
        ConfigurationError,
        f"{url!r} is not a valid URL: {why}",
        f"La dirección «{_shown(url)}» no es válida: {why_es}.",
        URL_FIELD,
    )


# A host name as DNS can carry it: letters, digits, hyphens (and the underscores some
# internal names have) in dot-separated labels.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?", re.IGNORECASE)


def _host_problem(host: str) -> str | None:
    """Why `host` cannot name any host, or None. Caught here, such a name would otherwise
    fail in the resolver as "cannot resolve", a transient error retried for nothing."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        # Empty or over-long labels, what IDNA refuses; then "xn--" labels that are no Punycode.
        name = host.encode("idna")
        name.decode("idna")
    except UnicodeError as exc:
        return f"is not a valid domain name ({exc.__cause__ or exc})"
    if len(name.rstrip(b".")) > 253 or not _HOST_NAME.fullmatch(name.decode("ascii")):
        return "is not a valid domain name"
    return None


def check_target(url: str, allowed: Allowed) -> Address:
    """Refuse URLs that are not plain http(s) addresses or that reach private, loopback or
    link-local hosts; the address to connect to (IPv4 first), the one that was checked."""
    parts = parse_target(url)
    host = parts.hostname or ""  # never empty: parse_target refuses a URL without a host
    addresses = _addresses(host, _origin(parts)[2])
    if not allowed.admits(host, addresses):
        private = [a for a in addresses if not _public(a)]
        if private:
            raise _said(
                ConfigurationError,
                f"{parts.hostname} resolves to a non-public address ({private[0]}): requests "
                "to private, loopback or link-local targets are refused unless allowed in "
                "PUENTE_HTTP_ALLOW",
                f"No se llama a {parts.hostname}: es una dirección privada o local "
                f"({private[0]}), no de Internet, y por seguridad no se permite. Usa la "
                "dirección pública del servicio; si es un servidor de tu red y te fías de él, "
                "pide a quien administra Puente que lo permita (ajuste PUENTE_HTTP_ALLOW).",
                URL_FIELD,
            )
    return min(addresses, key=lambda a: a.version)


NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Ranges that lead inside a network although the Python this runs on may call them global
# (3.11 does): site-local IPv6, deprecated by RFC 3879 but still routed inside some networks,
# and the local-use NAT64 prefix of RFC 8215, which reaches the operator's own IPv4 space.
NOT_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("64:ff9b:1::/48"))


def _public(address: Address) -> bool:
    """Global and not multicast, and so is any IPv4 address it carries (IPv4-mapped, 6to4,
    NAT64, IPv4-compatible ::a.b.c.d), which a gateway may reach on our side."""
    if not address.is_global or address.is_multicast:
        return False
    if any(address in net for net in NOT_PUBLIC):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        embedded = [
            address.ipv4_mapped,
            address.sixtofour,
            low if address in NAT64 or int(address) >> 32 == 0 else None,
        ]
        return all(_public(inner) for inner in embedded if inner is not None)
    return True


def within(url: str, base: str) -> bool:
    """True when `url` is under `base`: same scheme, host and port, and a path inside base's."""
    try:
        u, b = urlsplit(url), urlsplit(base)
        if "@" in u.netloc or _origin(u) != _origin(b):
            return False
    except ValueError:  # an unreadable host or port
        return False
    return (u.path.rstrip("/") + "/").startswith(b.path.rstrip("/") + "/")


def _origin(parts: SplitResult) -> tuple[str, str | None, int]:
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


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


def _pinned(parts: SplitResult, address: Address) -> tuple[str, str]:
    """The URL with its host replaced by `address`, and the Host header that names the host."""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc


def request(
    method: str,
    url: str,
    *,
    allowed: Allowed,
    headers: Mapping[str, str] | None = None,
    credentials: Mapping[str, str] | None = None,
    scope: str | None = None,
    payload: Any = None,
    form: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: tuple[float, float] = TIMEOUT,
    max_bytes: int = MAX_RESPONSE_BYTES,
    total: float = TOTAL_SECONDS,
) -> Answer:
    """Send one request, following at most MAX_REDIRECTS checked redirects; each hop goes to
    the address its check admitted.

    `credentials` (a connection's auth headers) are sent only to URLs within `scope` (its base
    URL; the first URL's origin by default): a redirect that leaves it goes without them. Once
    a redirect has left the first URL's origin (scheme, host or port), the caller's `headers`
    stay behind too, but for the NEUTRAL ones, and neither comes back if a later redirect
    returns: the other origin chose where that goes.

    Timeouts, broken connections, every 5xx, 408, 425 and 429 raise TransientError (with the
    server's Retry-After, in seconds or as a date); a failed TLS check is a ConfigurationError;
    other 4xx answers are returned for the caller to judge. `form` sends a form body instead
    of `payload` as JSON (OAuth 2 token endpoints want one); `content` sends these exact bytes
    (a signed body must arrive as it was signed).
    """
    deadline = time.monotonic() + total
    first = parse_target(url)
    scope = scope or urlunsplit((first.scheme, first.netloc, "/", "", ""))
    left = False  # has a redirect left the first URL's origin?
    for _ in range(MAX_REDIRECTS + 1):
        address = check_target(url, allowed)
        parts = urlsplit(url)
        target, host = _pinned(parts, address)
        left = left or _origin(parts) != _origin(first)
        sent = dict(headers or {})
        if left:
            sent = {k: v for k, v in sent.items() if k.lower() in NEUTRAL}
        if credentials and not left and within(url, scope):
            sent.update(credentials)
        with requests.Session() as http:
            # No proxies or .netrc from the worker's environment; a private CA bundle still
            # counts (REQUESTS_CA_BUNDLE, as requests reads it).
            http.trust_env = False
            http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or True
            http.mount(f"{parts.scheme}://", _Pinned(parts.hostname or ""))
            try:
                response = http.request(
                    method,
                    target,
                    headers={**sent, "Host": host},
                    json=payload,
                    data=form if content is None else content,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.exceptions.SSLError as exc:
                raise _said(
                    ConfigurationError,
                    f"{method} {url}: the TLS check of {parts.hostname} failed: {exc}",
                    f"La conexión segura con {parts.hostname} no es de fiar: su certificado no "
                    "es válido para ese nombre o ha caducado. Comprueba la dirección; si es la "
                    "correcta, quien mantiene ese servidor debe renovar su certificado.",
                    URL_FIELD,
                ) from None
            except requests.Timeout:
                raise _said(
                    TransientError,
                    f"{method} {url} timed out",
                    f"{parts.netloc} no ha respondido a tiempo. Suele ser pasajero: inténtalo "
                    "más tarde; si se repite, comprueba que la dirección y el servicio están "
                    "bien.",
                ) from None
            except requests.ConnectionError as exc:
                raise _said(
                    TransientError,
                    f"{method} {url} failed to connect: {exc}",
                    f"No se puede conectar con {parts.netloc}: comprueba la dirección (y el "
                    "puerto, si lleva) o inténtalo más tarde.",
                ) from None
            except requests.RequestException as exc:
                raise _said(
                    ValidationError,
                    f"{method} {url} cannot be sent: {exc}",
                    f"La petición a {parts.netloc} no se puede enviar tal como está: revisa la "
                    "dirección y los datos del paso.",
                ) from None
            with response:
                if response.is_redirect and "location" in response.headers:
                    location = response.headers["location"]
                    try:
                        following = urljoin(url, location)
                        parse_target(following)
                    except (ValueError, ConfigurationError):  # the answer is wrong, not the flow
                        raise _said(
                            ValidationError,
                            f"{method} {url} redirects to an invalid URL ({location[:300]!r})",
                            f"{parts.netloc} manda a otra dirección que no es válida, así que "
                            "no se sigue. Comprueba la dirección; si es la correcta, avisa a "
                            "quien mantiene ese servicio.",
                        ) from None
                    url = following
                    if response.status_code in (301, 302, 303):  # the body is not sent again
                        method, payload = ("GET" if method != "HEAD" else method), None
                        form = content = None
                    continue
                if response.status_code in RETRYABLE or 500 <= response.status_code <= 599:
                    raise _said(  # its body is not read: nobody would look at it
                        TransientError,
                        f"{method} {url} answered {response.status_code}",
                        _busy_es(parts.netloc, response.status_code),
                        retry_after=retry_after(response.headers.get("retry-after")),
                        status=response.status_code,
                    )
                body = _read(response, max_bytes, method, url, deadline)
                return Answer(response.status_code, dict(response.headers), body, url)
    raise _said(
        ValidationError,
        f"{method} {url}: more than {MAX_REDIRECTS} redirects",
        f"{_where(url)} manda a otra dirección más de {MAX_REDIRECTS} veces seguidas "
        "y se ha dejado de seguir. Escribe la dirección definitiva (fíjate en https:// y en "
        "«www.»), o avisa a quien mantiene ese servicio.",
    )


def _busy_es(where: str, status: int) -> str:
    """What a temporary refusal (429, 408, 425, 5xx) means, in Spanish."""
    if status == 429:
        return (
            f"{where} ha recibido demasiadas peticiones (HTTP 429) y pide esperar: "
            "inténtalo más tarde."
        )
    if status >= 500:
        return (
            f"{where} ha tenido un fallo (HTTP {status}). Suele ser pasajero: inténtalo más "
            "tarde; si se repite, avisa a quien mantiene ese servicio."
        )
    return f"{where} no ha podido atender la petición ahora (HTTP {status}): inténtalo más tarde."


def _read(
    response: requests.Response, max_bytes: int, method: str, url: str, deadline: float
) -> Any:
    """The body, at most `max_bytes`, all in before `deadline` (a server that trickles its
    answer has its connection cut then: each read's own timeout would not stop it)."""
    cut = threading.Event()

    def cut_off() -> None:  # urllib3 shuts the socket down: the blocked read returns
        cut.set()
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            response.raw.shutdown()

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut_off)
    watchdog.daemon = True
    watchdog.start()
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > max_bytes:
                raise _said(
                    ValidationError,
                    f"{method} {url}: the answer is larger than {max_bytes} bytes",
                    f"La respuesta de {_where(url)} ocupa más de {_size(max_bytes)}, lo máximo "
                    "que se admite: pide menos datos de una vez (con filtros o por páginas).",
                )
            chunks.append(chunk)
    except requests.RequestException as exc:
        if not cut.is_set():
            raise _said(
                TransientError,
                f"{method} {url}: the answer broke off ({exc})",
                f"La respuesta de {_where(url)} se ha cortado a medias. Suele ser pasajero: "
                "inténtalo más tarde.",
            ) from None
    finally:
        watchdog.cancel()
    if cut.is_set():
        raise _said(
            TransientError,
            f"{method} {url}: the answer took too long to arrive",
            f"La respuesta de {_where(url)} tarda demasiado en llegar. Suele ser pasajero: "
            "inténtalo más tarde; si se repite, pide menos datos de una vez.",
        )
    raw = b"".join(chunks)
    if "json" in (response.headers.get("content-type") or "") and raw:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(response.encoding or "utf-8", "replace")


def _where(url: str) -> str:
    """The host (and port) of a URL that was checked already."""
    return urlsplit(url).netloc


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date), at most a day."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


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
                    delay = slot - now
                    if time.monotonic() + delay > deadline:  # refused: the slot stays free
                        raise self._busy(key, per_second, delay)
                    pipe.multi()
                    # Kept until the slot is past, so the next caller queues behind it.
                    pipe.set(name, repr(slot), ex=math.ceil(delay + interval) + 1)
                    pipe.execute()
                except WatchError:  # another worker took a slot meanwhile: try again
                    continue
            if delay > 0:
                time.sleep(delay)
            return

    @staticmethod
    def _busy(key: str, per_second: float, delay: float) -> TransientError:
        rate = f"{per_second:g}".replace(".", ",")  # as Spanish writes 0,5
        return _said(
            TransientError,
            f"rate limit of {per_second}/s for {key}: busy",
            f"Hay demasiadas llamadas seguidas a esta conexión (se permiten {rate} por "
            "segundo): inténtalo de nuevo en unos segundos.",
            retry_after=delay,
        )
