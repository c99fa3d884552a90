"""What a flow export leaves out: literal values under secrets' names, wherever a step or the
trigger's config sets them; what reads the data, and what is no secret, stays."""

from __future__ import annotations

import copy

from connector.flow_export import leave_out_secrets, placeholders


def flow(step_input, config=None) -> dict:
    trigger = {"key": "webhook.deal_won", **({"config": config} if config is not None else {})}
    return {
        "name": "f",
        "trigger": trigger,
        "steps": [{"id": "a", "action": "http.request", "input": step_input}],
    }


def test_literals_under_secret_names_are_left_out_at_any_depth_and_in_the_trigger_config():
    document = flow(
        {"body": {"auth": {"password": "p4ss", "user": "ana"}, "tokens": ["t1", "t2"], "pin": 7}},
        config={"api_token": 1234, "stages": ["won"]},
    )
    out, left_out = leave_out_secrets(document)
    assert out["steps"][0]["input"]["body"] == {
        # under a secret's name, every literal is part of it: its shape stays, to fill in
        "auth": {"password": {"$secret": "…"}, "user": {"$secret": "…"}},
        "tokens": [{"$secret": "…"}, {"$secret": "…"}],
        "pin": 7,  # no rule says a "pin" is a secret: only names that mean one
    }
    assert out["trigger"]["config"] == {"api_token": {"$secret": "…"}, "stages": ["won"]}
    assert left_out == [
        "trigger.config.api_token",
        "steps[0].input.body.auth.password",
        "steps[0].input.body.auth.user",
        "steps[0].input.body.tokens[0]",
        "steps[0].input.body.tokens[1]",
    ]


def test_what_is_no_secret_stays_as_it_is():
    step_input = {
        "headers": {
            "Authorization": {"$expr": "concat('Bearer ', trigger.deal_id)"},  # reads the data
            "X-Token": {"$expr": "trigger.("},  # not an expression: the check says so
            "X-Api-Key": "",  # nothing to leave out
            "X-Secret-Flag": None,
        },
        "body": {"enabled": True, "auth_type": "bearer", "author": "ana"},
        "url": "https://crm.example/deals?page=2&author=ana",
    }
    document = flow(step_input)
    before = copy.deepcopy(document)
    assert leave_out_secrets(document) == (document, [])
    assert document == before  # a copy is made, the document is not touched


def test_a_placeholder_is_kept_and_named_again_when_a_flow_holding_one_is_exported():
    document = flow({"headers": {"Authorization": {"$secret": "Bearer …"}}})
    out, left_out = leave_out_secrets(document)
    assert out == document
    assert left_out == placeholders(document) == ["steps[0].input.headers.Authorization"]
