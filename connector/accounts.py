"""People who sign in to the UI: e-mail and password, a role, lockout after failures.

Passwords are hashed with scrypt (werkzeug.security, salted, memory-hard). Five wrong passwords
in a row lock the account for 15 minutes; an unknown e-mail costs the same time as a known
one. An admin creates accounts and resets passwords with a temporary password shown once,
which its owner replaces at the next sign-in. Changing the password or disabling the account
ends the sign-ins made before. Each sign-in is a row (`SignIn`) that signing out deletes, and
that lasts `SIGN_IN_LIFETIME` at most.

Roles, and what each may do (the UI's pages and forms check `can(role, permission)`; API
keys carry scopes instead, see web.auth):

    admin     everything: people, API keys, settings, the audit log
    editor    flows, connections and billing (drafts, issuing, payments, catalog, CRM)
    operator  runs: replay, resolve
    viewer    reads everything, changes nothing
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from connector.models import SignIn, User
from connector.schemas import CONTROL_CHARACTERS
from database import utcnow

ROLES = ("admin", "editor", "operator", "viewer")
PERMISSIONS = {
    "read": frozenset(ROLES),
    "runs": frozenset({"admin", "operator"}),
    "flows": frozenset({"admin", "editor"}),
    "billing": frozenset({"admin", "editor"}),
    "admin": frozenset({"admin"}),
}
MAX_FAILURES = 5
LOCK_TIME = timedelta(minutes=15)
MIN_PASSWORD = 10
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@functools.cache
def _nobody() -> str:
    """A hash checked when the e-mail is unknown, so that answering takes as long as for a
    known one. Made on first use, not at import: scrypt takes 32 MB and a tenth of a second,
    which every process (worker, launcher, CLI) would otherwise pay on start."""
    return generate_password_hash(secrets.token_urlsafe(16))


class AccountError(Exception):
    """A refusal the UI shows translated: `code` names the message, `field` the form field."""

    def __init__(self, code: str, field: str | None = None, **values: object) -> None:
        super().__init__(code)
        self.code, self.field, self.values = code, field, values


def can(role: str | None, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def normalize_email(email: object) -> str:
    given = str(email or "")
    text = given.strip().lower()
    # A line break is refused even at an end that strip() would cut: nobody types one.
    if len(text) > 254 or not EMAIL.match(text) or CONTROL_CHARACTERS.search(given):
        raise AccountError("email_invalid", "email")
    return text


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError("password_too_short", "password", minimum=MIN_PASSWORD)
    if len(password) > 200:
        raise AccountError("password_too_long", "password")


def temporary_password() -> str:
    """A password to pass on by hand: 16 characters, no look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str  # shown once: the admin passes it on


def create_user(
    s: Session, email: str, role: str, name: str = "", password: str | None = None
) -> NewUser:
    """A new account; without `password` it gets a temporary one its owner must change."""
    address = normalize_email(email)
    if role not in ROLES:
        raise AccountError("role_invalid", "role")
    if s.scalar(select(User.id).where(User.email == address)) is not None:
        raise AccountError("email_taken", "email")
    chosen = password if password is not None else temporary_password()
    check_password(chosen)
    user = User(
        email=address,
        name=name.strip()[:120],
        role=role,
        password_hash=generate_password_hash(chosen),
        must_change_password=password is None,
    )
    s.add(user)
    s.flush()
    return NewUser(user, chosen)


def bootstrap_admin(s: Session, email: str, password: str | None) -> NewUser | None:
    """The first admin, when there is no account at all yet; None otherwise. A generated
    password (no `password`) is temporary: changed at the first sign-in."""
    if s.scalar(select(func.count()).select_from(User)):
        return None
    return create_user(s, email, "admin", name="Admin", password=password)


def authenticate(
    s: Session, email: str, password: str, now: datetime | None = None
) -> User | AccountError:
    """The active account with this e-mail and password, or the refusal: "sign_in_failed",
    or "locked" (with `until`). The refusal is returned, not raised, so that the failure it
    counts is committed with the session."""
    now = now or utcnow()
    try:
        address = normalize_email(email)
    except AccountError:
        address = ""
    user = s.scalar(select(User).where(User.email == address).with_for_update())
    if user is None or not user.active:
        check_password_hash(_nobody(), password)
        return AccountError("sign_in_failed")
    if user.locked_until is not None and user.locked_until > now:
        return AccountError("locked", until=user.locked_until)
    if not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins < MAX_FAILURES:
            return AccountError("sign_in_failed")
        user.failed_logins = 0
        user.locked_until = now + LOCK_TIME
        return AccountError("locked", until=user.locked_until)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return user


SIGN_IN_LIFETIME = timedelta(days=7)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_sign_in(s: Session, user: User, now: datetime | None = None) -> str:
    """A new sign-in for `user`: the token its browser keeps (only its digest is stored)."""
    now = now or utcnow()
    s.execute(delete(SignIn).where(SignIn.created_at <= now - SIGN_IN_LIFETIME))
    token = secrets.token_urlsafe(32)
    s.add(SignIn(id=_digest(token), user_id=user.id, created_at=now))
    return token


def signed_in(s: Session, token: str, now: datetime | None = None) -> User | None:
    """The active account a live sign-in belongs to: None once signed out, expired, or ended
    by a new password or a disabled account."""
    now = now or utcnow()
    found = s.execute(
        select(User, SignIn.created_at)
        .join(SignIn, SignIn.user_id == User.id)
        .where(SignIn.id == _digest(token))
    ).one_or_none()
    if found is None or found[1] <= now - SIGN_IN_LIFETIME or not found[0].active:
        return None
    return found[0]


def close_sign_in(s: Session, token: str) -> None:
    """Sign out: the sign-in ends here, whatever copy of its cookie is left."""
    s.execute(delete(SignIn).where(SignIn.id == _digest(token)))


def _end_sign_ins(s: Session, user: User) -> None:
    """Every sign-in of `user` ends (a new password, a disabled account)."""
    s.execute(delete(SignIn).where(SignIn.user_id == user.id))


def change_password(s: Session, user: User, current: str, new: str) -> None:
    """The owner's own change: the current password first (a temporary one counts)."""
    if not check_password_hash(user.password_hash, current):
        raise AccountError("password_wrong", "current")
    check_password(new)
    if new == current:
        raise AccountError("password_same", "password")
    _set_password(s, user, new, temporary=False)


def reset_password(s: Session, user_id: int) -> str:
    """An admin's reset: a new temporary password, shown once; the old sign-ins end."""
    user = _get(s, user_id)
    password = temporary_password()
    _set_password(s, user, password, temporary=True)
    user.failed_logins, user.locked_until = 0, None
    return password


def _set_password(s: Session, user: User, password: str, temporary: bool) -> None:
    user.password_hash = generate_password_hash(password)
    user.must_change_password = temporary
    _end_sign_ins(s, user)


def update_user(
    s: Session, user_id: int, *, role: str | None = None, active: bool | None = None
) -> User:
    """Change a role or disable/enable an account; the last active admin always stays one."""
    user = _get(s, user_id)
    if role is not None and role not in ROLES:
        raise AccountError("role_invalid", "role")
    stays_admin = (role or user.role) == "admin" and (user.active if active is None else active)
    if user.role == "admin" and user.active and not stays_admin and _admins(s) <= 1:
        raise AccountError("last_admin")
    if role is not None:
        user.role = role
    if active is not None and active != user.active:
        user.active = active
        _end_sign_ins(s, user)  # a disabled account is signed out everywhere
    return user


def _admins(s: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == "admin", User.active)
    return s.scalar(query) or 0


def _get(s: Session, user_id: int) -> User:
    user = s.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise AccountError("user_not_found")
    return user
