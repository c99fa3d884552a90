"""The secret key can be rotated: old keys still decrypt, and rotate-secret-key re-encrypts
everything stored so that the new key alone opens it."""

from __future__ import annotations

import pytest

from connector import admin
from connector.connections import read_secret, save_connection
from connector.crypto import SecretBox
from connector.models import Connection, Subscription
from web import cli

OLD, NEW = "test-secret-key", "a-brand-new-key"


def test_a_box_with_the_new_key_and_the_old_one_opens_both_and_writes_with_the_new():
    old_box, new_box = SecretBox(OLD), SecretBox(NEW)
    both = SecretBox(NEW, [OLD])

    assert both.decrypt(old_box.encrypt("old")) == "old"
    assert both.decrypt(new_box.encrypt("new")) == "new"
    assert new_box.decrypt(both.encrypt("fresh")) == "fresh"
    with pytest.raises(ValueError, match="PUENTE_OLD_SECRET_KEYS"):
        new_box.decrypt(old_box.encrypt("old"))


def test_rotating_leaves_every_stored_secret_readable_with_only_the_new_key(rt, settings):
    with rt.sessions.begin() as s:  # rt encrypts with OLD
        hook_secret = admin.create_subscription(s, rt.secrets, "hook", "webhook.deal_won").secret
        conn = save_connection(
            s,
            rt.secrets,
            name="crm",
            base_url="https://api.example.com",
            auth="bearer",
            secret={"token": "t0k3n"},
        )
        conn.access_token_encrypted = rt.secrets.encrypt("access")

    counts = cli.rotate_secret_key(settings.with_(secret_key=NEW, old_secret_keys=(OLD,)))

    assert counts["subscriptions.secret_encrypted"] == 1
    assert counts["connections.secret_encrypted"] == 1
    assert counts["connections.access_token_encrypted"] == 1
    assert counts["run_steps.resume_sealed"] == 0
    only_new = SecretBox(NEW)
    with rt.sessions() as s:
        conn = s.query(Connection).one()
        assert read_secret(conn, only_new) == {"token": "t0k3n"}
        assert only_new.decrypt(conn.access_token_encrypted or "") == "access"
        assert only_new.decrypt(s.query(Subscription).one().secret_encrypted) == hook_secret


def test_the_command_changes_nothing_when_a_value_opens_with_no_key(rt, settings, capsys):
    with rt.sessions.begin() as s:
        admin.create_subscription(s, rt.secrets, "hook", "webhook.deal_won")
        save_connection(
            s,
            rt.secrets,
            name="crm",
            base_url="https://x.example",
            auth="bearer",
            secret={"token": "t"},
        )
    before = _stored(rt)
    env = {
        "DATABASE_URL": settings.database_url,
        "PUENTE_SECRET_KEY": NEW,
        "PUENTE_INSTANCE_DIR": str(settings.instance_dir),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("PUENTE_OLD_SECRET_KEYS", raising=False)
        assert cli.main(["rotate-secret-key"]) == 1
        assert "nothing rotated" in capsys.readouterr().err
        assert _stored(rt) == before

        mp.setenv("PUENTE_OLD_SECRET_KEYS", f" {OLD} ,other")
        assert cli.main(["rotate-secret-key"]) == 0
    out = capsys.readouterr().out
    assert "connections.secret_encrypted: 1 re-encrypted" in out
    assert _stored(rt) != before


def _stored(rt):
    with rt.sessions() as s:
        return (
            [c.secret_encrypted for c in s.query(Connection)],
            [x.secret_encrypted for x in s.query(Subscription)],
        )


def test_sessions_get_a_key_of_their_own_from_the_environment_or_the_instance(tmp_path):
    from connector.settings import Settings

    given = Settings.from_env({"PUENTE_INSTANCE_DIR": str(tmp_path), "PUENTE_SESSION_KEY": "s"})
    made = Settings.from_env({"PUENTE_INSTANCE_DIR": str(tmp_path / "fresh")})
    again = Settings.from_env({"PUENTE_INSTANCE_DIR": str(tmp_path / "fresh")})

    assert given.cookie_key == "s"
    assert made.cookie_key not in ("", made.secret_key)  # its own file, beside secret_key
    assert (tmp_path / "fresh" / "session_key").read_text().strip() == made.cookie_key
    assert again.cookie_key == made.cookie_key  # a restart keeps people signed in
    by_hand = made.with_(session_key="")
    assert by_hand.cookie_key not in ("", by_hand.secret_key)  # derived, never the key itself
