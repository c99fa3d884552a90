"""Mask secrets before anything is written to the run log (step inputs, outputs, errors).

A value is masked when
- its schema says so: it sits at a `writeOnly` path of the action's input or output schema;
- it is a secret a connection in use handed out (its stored credentials, its access token,
  the auth headers made from them: see `holding`), wherever it appears, even inside a longer
  text (secrets shorter than MIN_EMBEDDED characters only as a whole value);
- its name says so: a key, a header, a URL query or form parameter, or a quoted key in a text
  (an answer quoted in an error message) named like a secret.

Names are judged by their words, not by substrings: "clientSecret", "client-secret" and
"CLIENT_SECRET" are the words client + secret; "author" is not "auth", nor "passport" "pass".
Words that mean a secret wherever they stand mask anywhere in the name (password, secret,
credential, api key, private key, authorization, cookie…). Words that also name business
things (token, auth, session, signature, pass) mask only as the name's last word, its head
noun, which is what an English compound is about: "access_token", "X-Auth" and "session_id"
are secrets; "tokens_used", "token_expires_at", "auth_type" and "session_date" are not.
Trailing words that only say how a secret is carried ("password_confirmation", "token_value",
"auth_header") are looked past first, and glued names ("clientsecret", "PHPSESSID") mask when
they end like a secret.

The run path is hot: patterns are compiled once, each name is judged once (cached) and a
schema file's writeOnly paths are worked out once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import Any
from urllib.parse import quote, unquote_plus

from connector.schemas import load_schema, resolve_ref

MASK = "••••••"
MIN_EMBEDDED = 8  # a shorter secret ("acme") is masked as a whole value, never inside texts

# Names: see the module's docstring. Words are lower case, "_", "-", spaces and case dropped.
ANYWHERE = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "creds",
        "apikey",
        "apikeys",
        "privatekey",
        "authorization",
        "cookie",
        "cookies",
        "jwt",
        "contraseña",
        "contrasena",
        "secreto",
    }
)
HEAD = frozenset(
    {
        "token",
        "tokens",
        "auth",
        "pass",
        "session",
        "sessionid",
        "sessionkey",
        "sessid",
        "signature",
        "bearer",
        "accesskey",
        "secretkey",
        "signingkey",
        "encryptionkey",
    }
)
GLUED = (
    "secret",
    "secrets",
    "token",
    "tokens",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "credential",
    "credentials",
    "authorization",
    "signature",
    "cookie",
    "sessid",
    "sessionid",
    "auth",
)
CARRIERS = frozenset(
    {
        "value",
        "val",
        "confirmation",
        "confirm",
        "header",
        "string",
        "str",
        "text",
        "raw",
        "plain",
        "plaintext",
        "b64",
        "base64",
        "hex",
        "hash",
        "data",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")
_SEPARATORS = re.compile(r"[\W_]+")
_judged: dict[str, bool] = {}
_MAX_JUDGED = 8192  # names remembered (keys repeat from run to run; an odd payload may not)


def sensitive(name: str) -> bool:
    """Whether a key, header or query parameter called `name` holds a secret."""
    hit = _judged.get(name)
    if hit is None:
        if len(_judged) >= _MAX_JUDGED:
            _judged.clear()
        hit = _judged[name] = _judge(name)
    return hit


def _judge(name: str) -> bool:
    words = [w for w in _SEPARATORS.split(_CAMEL.sub(" ", name).lower()) if w]
    pairs = [a + b for a, b in pairwise(words)]
    if any(w in ANYWHERE for w in words) or any(p in ANYWHERE for p in pairs):
        return True
    while words and (words[-1] in CARRIERS or words[-1].isdigit()):
        words.pop()
    if not words:
        return False
    head = words[-1]
    pair = words[-2] + head if len(words) > 1 else head
    return head in HEAD or pair in HEAD or head.endswith(GLUED)


# Texts: a URL's query or a form body (name=value), a quoted key in quoted JSON or a Python
# dict ("key": "value"), a bearer token.
_QUERY = re.compile(r"(?:(?<=[?&;])|^)([^=&;#?\s]{1,100})=([^&;#\s\"'<>]*)")
_QUOTED = re.compile(r"""(["'])([^"'\\\n]{1,100})\1(\s*:\s*)(["'])((?:\\.|(?!\4)[^\\\n])*)\4""")
_BEARER = re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{6,}")


def _query_value(match: re.Match[str], mask: str = MASK) -> str:
    name, value = match[1], match[2]
    if value and sensitive(unquote_plus(name) if "%" in name else name):
        return f"{name}={mask}"
    return match[0]


def mask_query(text: str, mask: str = MASK) -> str:
    """`text` with the values of its secret-named URL query (or form) parameters replaced."""
    if "=" not in text:
        return text
    return _QUERY.sub(lambda match: _query_value(match, mask), text)


def _quoted_value(match: re.Match[str]) -> str:
    quote_, name, colon, opened, value = match.groups()
    if value and sensitive(name):
        return f"{quote_}{name}{quote_}{colon}{opened}{MASK}{opened}"
    return match[0]


@dataclass(frozen=True)
class _Secrets:
    """The secrets of one redaction: every one as a whole value, long ones inside texts too."""

    whole: frozenset[str] = frozenset()
    embedded: tuple[str, ...] = ()  # longest first: a secret containing another goes first

    @classmethod
    def of(cls, secrets: Iterable[object]) -> _Secrets:
        whole = frozenset(s for s in secrets if isinstance(s, str) and s)
        long = sorted((s for s in whole if len(s) >= MIN_EMBEDDED), key=len, reverse=True)
        return cls(whole, tuple(long))

    def text(self, text: str) -> str:
        if text in self.whole:
            return MASK
        for secret in self.embedded:
            if secret in text:
                text = text.replace(secret, MASK)
        # Each pattern runs only on texts that can hold what it looks for (cheap tests first).
        if "=" in text:
            text = _QUERY.sub(_query_value, text)
        if '":' in text or "':" in text:
            text = _QUOTED.sub(_quoted_value, text)
        if "earer" in text:
            text = _BEARER.sub(rf"\g<1>{MASK}", text)
        return text


_NONE = _Secrets()


# Schemas: where the writeOnly values are, worked out once per schema file.


@dataclass
class _Shape:
    """The writeOnly places of a (sub)schema: only the branches that lead to one."""

    write_only: bool = False
    properties: dict[str, _Shape] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)  # every property it names
    patterns: list[tuple[re.Pattern[str], _Shape | None]] = field(default_factory=list)
    additional: _Shape | None = None
    items: _Shape | None = None

    def child(self, key: str) -> _Shape | None:
        """The shape of the value under `key` (JSON Schema's rules, generously merged)."""
        found = self.properties.get(key)
        matched = key in self.declared
        for pattern, shape in self.patterns:
            if pattern.search(key):
                matched = True
                found = _merge(found, shape)
        return found if matched else self.additional

    def matters(self) -> bool:
        return bool(
            self.write_only
            or self.properties
            or self.additional
            or self.items
            or any(shape for _, shape in self.patterns)
        )


def _merge(a: _Shape | None, b: _Shape | None) -> _Shape | None:
    if a is None or b is None:
        return a or b
    properties = dict(a.properties)
    for key, shape in b.properties.items():
        properties[key] = _merge(properties.get(key), shape) or shape
    return _Shape(
        a.write_only or b.write_only,
        properties,
        a.declared | b.declared,
        a.patterns + b.patterns,
        _merge(a.additional, b.additional),
        _merge(a.items, b.items),
    )


_MAX_DEPTH = 32  # schemas here are not recursive; a recursive one is cut off here


def _shape(schema: Any, base: str, root: Any, depth: int = 0) -> _Shape | None:
    """Where `schema` (read from the file `base`, whose document is `root`) marks writeOnly."""
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return _shape({**_pointer(root, ref), **siblings}, base, root, depth + 1)
    if isinstance(ref, str):
        schema, base = resolve_ref(schema, base)
        root = load_schema(base)
    node = _Shape(write_only=schema.get("writeOnly") is True)
    for key, sub in (schema.get("properties") or {}).items():
        node.declared.add(key)
        found = _shape(sub, base, root, depth + 1)
        if found is not None:
            node.properties[key] = found
    for pattern, sub in (schema.get("patternProperties") or {}).items():
        try:
            node.patterns.append((re.compile(pattern), _shape(sub, base, root, depth + 1)))
        except re.error:
            continue
    node.additional = _shape(schema.get("additionalProperties"), base, root, depth + 1)
    for sub in [schema.get("items"), *(schema.get("prefixItems") or [])]:
        node.items = _merge(node.items, _shape(sub, base, root, depth + 1))
    merged: _Shape | None = node
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword) or []:
            merged = _merge(merged, _shape(sub, base, root, depth + 1))
    for keyword in ("then", "else"):
        merged = _merge(merged, _shape(schema.get(keyword), base, root, depth + 1))
    return merged if merged is not None and merged.matters() else None


def _pointer(root: Any, ref: str) -> dict[str, Any]:
    """The part of `root` a local "#/a/b" reference names ({} when there is none)."""
    node = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


@cache
def _shape_of(name: str) -> _Shape | None:
    schema = load_schema(name)
    return _shape(schema, name, schema)


# Redacting


def redact(
    value: Any,
    schema: str | Mapping[str, Any] | None = None,
    secrets: Iterable[object] = (),
) -> Any:
    """Copy `value` with its secrets masked: at the writeOnly paths of `schema` (a file under
    schemas/, or a schema itself), the `secrets` given (what the connections in use handed
    out, `holding`) wherever they appear, and whatever is named like a secret."""
    if isinstance(schema, str):
        shape = _shape_of(schema)
    elif schema:
        shape = _shape(dict(schema), "", schema)
    else:
        shape = None
    if shape is not None and shape.write_only:
        return _masked(value)
    return _redact(value, shape, _Secrets.of(secrets) if secrets else _NONE)


def _masked(value: Any) -> Any:
    """The mask, or the value when it is empty (the log shows it was missing)."""
    return value if value is None or value == "" else MASK


def _redact(value: Any, shape: _Shape | None, secrets: _Secrets) -> Any:
    if isinstance(value, str):
        return secrets.text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = shape.child(key) if shape is not None else None
            if (sub is not None and sub.write_only) or sensitive(str(key)):
                out[key] = _masked(item)
            else:
                out[key] = _redact(item, sub, secrets)
        return out
    if isinstance(value, list):
        sub = shape.items if shape is not None else None
        return [_redact(item, sub, secrets) for item in value]
    return value


# Secrets in use: what connections hand out while a step runs.

_holders: ContextVar[tuple[set[str], ...]] = ContextVar("puente_secrets_held", default=())


@contextmanager
def holding(into: set[str] | None = None) -> Iterator[set[str]]:
    """Collect the secrets handed out meanwhile (`hold`), to mask them in what is logged."""
    held = set() if into is None else into
    token = _holders.set((*_holders.get(), held))
    try:
        yield held
    finally:
        _holders.reset(token)


def hold(values: Iterable[object]) -> None:
    """Note secrets in use (a connection's credentials, the headers made from them) for every
    `holding` around; nothing happens outside one."""
    holders = _holders.get()
    if not holders:
        return
    found: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value:
            continue
        found.add(value)
        scheme, _, rest = value.partition(" ")
        if rest.strip() and scheme.isalpha():  # "Bearer <token>", "Basic <base64>"
            found.add(rest.strip())
        encoded = quote(value, safe="")  # as it would stand in a URL
        if encoded != value:
            found.add(encoded)
    for held in holders:
        held.update(found)
