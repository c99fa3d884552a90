"""Accounts: scrypt-hashed passwords, lockout after five failures, temporary passwords an
admin hands out, and at least one admin always left."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector import accounts
from connector.accounts import AccountError
from connector.models import User
from database import utcnow

PASSWORD = "correcto caballo batería"


def new(rt, email="ana@empresa.es", role="admin", password=PASSWORD) -> int:
    with rt.sessions.begin() as s:
        return accounts.create_user(s, email, role, password=password).user.id


def attempt(rt, email="ana@empresa.es", password=PASSWORD, now=None) -> User | AccountError:
    with rt.sessions.begin() as s:
        found = accounts.authenticate(s, email, password, now)
        if isinstance(found, User):
            s.flush()
            s.expunge(found)
        return found


def sign_in(rt, *args, **kwargs) -> User:
    found = attempt(rt, *args, **kwargs)
    assert isinstance(found, User), found.code
    return found


def refusal(rt, *args, **kwargs) -> AccountError:
    found = attempt(rt, *args, **kwargs)
    assert isinstance(found, AccountError), "signed in"
    return found


def test_a_new_account_keeps_a_salted_scrypt_hash_and_a_lowercased_email(rt):
    new(rt, email="  Ana@Empresa.ES ")
    new(rt, email="luis@empresa.es")
    with rt.sessions() as s:
        ana, luis = s.query(User).order_by(User.id).all()
    assert ana.email == "ana@empresa.es"
    assert ana.password_hash.startswith("scrypt:") and PASSWORD not in ana.password_hash
    assert ana.password_hash != luis.password_hash  # salted
    assert not ana.must_change_password  # a password given is the owner's own


@pytest.mark.parametrize(
    ("email", "role", "password", "code"),
    [
        ("ana", "admin", PASSWORD, "email_invalid"),
        ("luis@empresa.es\r\n", "admin", PASSWORD, "email_invalid"),
        ("luis@empresa.es\nBcc: spy@evil.example", "admin", PASSWORD, "email_invalid"),
        ("lu\x00is@empresa.es", "admin", PASSWORD, "email_invalid"),
        ("ana@empresa.es", "jefe", PASSWORD, "role_invalid"),
        ("luis@empresa.es", "viewer", "corta", "password_too_short"),
        ("ANA@empresa.es", "viewer", PASSWORD, "email_taken"),
    ],
)
def test_bad_accounts_are_refused_saying_which_field(rt, email, role, password, code):
    new(rt)
    with rt.sessions.begin() as s, pytest.raises(AccountError) as caught:
        accounts.create_user(s, email, role, password=password)
    assert caught.value.code == code
    assert caught.value.field in ("email", "role", "password")


def test_the_right_password_signs_in_and_wrong_or_unknown_ones_get_the_same_refusal(rt):
    new(rt)

    assert sign_in(rt).last_login_at is not None
    assert refusal(rt, password="otra cosa").code == "sign_in_failed"
    assert refusal(rt, email="nadie@empresa.es").code == "sign_in_failed"
    assert refusal(rt, email="no es un correo").code == "sign_in_failed"


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(rt):
    new(rt)
    now = utcnow()
    codes = [refusal(rt, password=f"mal {n}", now=now).code for n in range(5)]

    assert codes == ["sign_in_failed"] * 4 + ["locked"]
    locked = refusal(rt, now=now + timedelta(minutes=14))  # even the right password
    assert locked.code == "locked" and locked.values["until"] == now + accounts.LOCK_TIME
    assert sign_in(rt, now=now + timedelta(minutes=16)).failed_logins == 0


def test_a_success_forgets_earlier_failures(rt):
    new(rt)
    for _ in range(4):
        refusal(rt, password="mal")
    sign_in(rt)
    assert [refusal(rt, password="mal").code for _ in range(4)] == ["sign_in_failed"] * 4


def test_a_disabled_account_cannot_sign_in(rt):
    new(rt)
    other = new(rt, email="luis@empresa.es", role="viewer")
    with rt.sessions.begin() as s:
        accounts.update_user(s, other, active=False)
    assert refusal(rt, email="luis@empresa.es").code == "sign_in_failed"


def test_a_reset_gives_a_temporary_password_and_ends_the_old_sign_ins(rt):
    user_id = new(rt)
    sign_in(rt)
    with rt.sessions.begin() as s:
        kept = accounts.open_sign_in(s, s.get_one(User, user_id))
    with rt.sessions.begin() as s:
        temporary = accounts.reset_password(s, user_id)

    assert refusal(rt).code == "sign_in_failed"  # the old password is gone
    after = sign_in(rt, password=temporary)
    assert after.must_change_password
    with rt.sessions() as s:
        assert accounts.signed_in(s, kept) is None
    with rt.sessions.begin() as s:
        row = s.get(User, user_id)
        with pytest.raises(AccountError) as wrong:
            accounts.change_password(s, row, "no es", "una contraseña nueva")
        accounts.change_password(s, row, temporary, "una contraseña nueva")
    assert wrong.value.code == "password_wrong"
    assert not sign_in(rt, password="una contraseña nueva").must_change_password


def test_the_last_active_admin_can_be_neither_demoted_nor_disabled(rt):
    ana = new(rt)
    with rt.sessions.begin() as s, pytest.raises(AccountError) as demoted:
        accounts.update_user(s, ana, role="editor")
    with rt.sessions.begin() as s, pytest.raises(AccountError) as disabled:
        accounts.update_user(s, ana, active=False)
    assert demoted.value.code == disabled.value.code == "last_admin"

    luis = new(rt, email="luis@empresa.es", role="admin")
    with rt.sessions.begin() as s:
        accounts.update_user(s, ana, role="viewer")
    with rt.sessions.begin() as s, pytest.raises(AccountError):
        accounts.update_user(s, luis, active=False)  # now luis is the last one


def test_the_first_admin_is_made_once_with_a_temporary_password_unless_given(rt):
    with rt.sessions.begin() as s:
        first = accounts.bootstrap_admin(s, "jefa@empresa.es", None)
        again = accounts.bootstrap_admin(s, "otra@empresa.es", "una contraseña larga")

    assert first is not None and again is None
    assert first.user.role == "admin" and first.user.must_change_password
    assert len(first.password) == 16
    assert sign_in(rt, "jefa@empresa.es", first.password).role == "admin"


def test_roles_allow_what_their_names_say():
    allowed = {
        role: {p for p in accounts.PERMISSIONS if accounts.can(role, p)} for role in accounts.ROLES
    }
    assert allowed == {
        "admin": {"read", "runs", "flows", "billing", "admin"},
        "editor": {"read", "flows", "billing"},
        "operator": {"read", "runs"},
        "viewer": {"read"},
    }
    assert not accounts.can(None, "read")


def test_an_unknown_email_is_answered_after_checking_a_scrypt_hash(rt, monkeypatch):
    checked: list[str] = []
    real = accounts.check_password_hash
    monkeypatch.setattr(
        accounts, "check_password_hash", lambda h, p: checked.append(h) or real(h, p)
    )

    assert refusal(rt, email="nadie@empresa.es").code == "sign_in_failed"
    assert refusal(rt, email="otro@empresa.es").code == "sign_in_failed"

    assert len(checked) == 2 and checked[0] == checked[1]
    assert checked[0].startswith("scrypt:")
