"""Command line: `python -m web.cli <command>` (init, user, demo, api-key, sweep, send-sample,
rotate-secret-key)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from datetime import timedelta

import requests
from sqlalchemy import select

import actions
from actions import crm
from connector import (
    accounts,
    admin,
    events,
    jobs,
    lifecycle,
    migrate,
    polling,
    rest_hooks,
    retention,
)
from connector.crypto import SecretBox, reencrypt_all
from connector.models import User
from connector.registry import default_registry
from connector.runtime import Runtime, build_runtime
from connector.settings import Settings
from connector.standard_webhooks import headers_for
from database import Base, make_engine, make_sessionmaker, utcnow
from web import demo, notifications


def init(settings: Settings) -> accounts.NewUser | None:
    """Apply migrations, register the bootstrap API key if there is no key yet, and create
    the first admin if there is no account yet (returned, with its password, shown once)."""
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            if settings.bootstrap_api_key and admin.bootstrap_api_key(
                s, settings.bootstrap_api_key
            ):
                print("registered PUENTE_BOOTSTRAP_API_KEY for the first admin")
            first = accounts.bootstrap_admin(
                s, settings.bootstrap_admin_email, settings.bootstrap_admin_password
            )
    finally:
        engine.dispose()
    if first is not None:
        print(f"first admin created: {first.user.email}")
    return first


def user(settings: Settings, email: str, role: str, reset: bool) -> int:
    """Create an account (or, with --reset, give an existing one a new temporary password)
    and print its temporary password, once. For the server's admin: locked out, forgotten."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            if reset:
                found = s.scalar(select(User).where(User.email == accounts.normalize_email(email)))
                if found is None:
                    print(f"there is no account {email}; leave out --reset to create it")
                    return 1
                password = accounts.reset_password(s, found.id)
            else:
                password = accounts.create_user(s, email, role).password
    except accounts.AccountError as exc:
        print(f"refused: {exc.code} ({exc.field or 'account'})")
        return 1
    finally:
        engine.dispose()
    print(f"{email}: temporary password {password} (shown once; changed at the first sign-in)")
    return 0


def send_sample(settings: Settings, url: str | None, deal_id: str | None) -> int:
    """Sign the sample 'deal won' with the demo webhook's secret and POST it.

    Needs only the database (for the secret), not Redis: it runs beside `make run`.
    """
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as s:
        sub, secret = demo.ensure_demo(s, SecretBox.for_settings(settings), default_registry())
        token = sub.token
    engine.dispose()
    body = json.dumps(demo.sample_deal(deal_id), ensure_ascii=False).encode()
    headers = headers_for(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    target = url or f"{settings.public_url}/hooks/{token}"
    response = requests.post(
        target, data=body, timeout=10, headers={**headers, "Content-Type": "application/json"}
    )
    print(f"POST {target} → {response.status_code} {response.text.strip()}")
    if response.status_code == 202:
        for run_id in response.json()["run_ids"]:
            print(f"run:      {settings.public_url}/ui/runs/{run_id}")
        print(f"invoices: {settings.public_url}/ui/invoices")
    return 0 if response.ok else 1


def rotate_secret_key(settings: Settings) -> dict[str, int]:
    """Re-encrypt every stored secret with PUENTE_SECRET_KEY, in one transaction.

    Values encrypted with a key in PUENTE_OLD_SECRET_KEYS are opened with it; once this has
    run, the old keys can go. Needs only the database, not Redis.
    """
    import connector.models  # noqa: F401  (their tables are what is rotated)
    import invoicing.models  # noqa: F401

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            return reencrypt_all(s, SecretBox.for_settings(settings), Base.metadata)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "init", help="apply database migrations, the bootstrap API key and the first admin"
    )
    person = sub.add_parser(
        "user", help="create an account, or reset its password, and print a temporary one"
    )
    person.add_argument("--email", required=True)
    person.add_argument("--role", default="admin", choices=accounts.ROLES)
    person.add_argument("--reset", action="store_true", help="reset an existing account")
    sub.add_parser("demo", help="create the demo webhook and flow; print URL and secret")
    key = sub.add_parser("api-key", help="create an API key and print it (shown once)")
    key.add_argument("--name", required=True)
    key.add_argument(
        "--scopes",
        default=",".join(admin.SCOPES),
        help="what it may do, comma-separated: read, write, admin (default: all)",
    )
    sweep = sub.add_parser(
        "sweep",
        help="re-enqueue runs whose job was lost, prune hourly; between sweeps, hand internal "
        "events to their flows and run the polls that are due",
    )
    sweep.add_argument("--every", type=float, default=0, help="repeat every N seconds")
    prune = sub.add_parser("prune", help="drop payloads older than the retention period")
    prune.add_argument("--days", type=int, help="default: PUENTE_RETENTION_DAYS (30)")
    submit = sub.add_parser(
        "verifactu-submit", help="send queued VERI*FACTU records to PUENTE_VERIFACTU_URL"
    )
    submit.add_argument(
        "--every", type=float, default=0, help="keep going, at least this many seconds apart"
    )
    sub.add_parser(
        "verifactu-check",
        help="recompute every record's huella and the event log's hashes; log what is found",
    )
    sample = sub.add_parser("send-sample", help="send a signed sample 'deal won'")
    sample.add_argument("--url", help="webhook URL (default: the demo webhook on this server)")
    sample.add_argument("--deal-id", help="deal id (default: a new one each time)")
    sub.add_parser(
        "rotate-secret-key",
        help="re-encrypt every stored secret with PUENTE_SECRET_KEY "
        "(the previous keys in PUENTE_OLD_SECRET_KEYS)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    if args.command == "init":
        first = init(settings)
        if first is not None:
            print(f"password: {first.password} (shown once)")
        return 0
    if args.command == "user":
        return user(settings, args.email, args.role, args.reset)
    if args.command == "send-sample":
        return send_sample(settings, args.url, args.deal_id)
    if args.command == "rotate-secret-key":
        return _rotate(settings)
    rt = build_runtime(settings)
    if args.command == "demo":
        with rt.sessions.begin() as s:
            hook, secret = demo.ensure_demo(s, rt.secrets, rt.registry)
            print(f"webhook URL:    {settings.public_url}/hooks/{hook.token}")
            print(f"webhook secret: {secret}")
    elif args.command == "api-key":
        with rt.sessions.begin() as s:
            scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
            unknown = sorted(set(scopes) - set(admin.SCOPES))
            if unknown or not scopes:
                print(
                    f"unknown scope {unknown[0] if unknown else '(none)'}; the scopes are "
                    f"{', '.join(admin.SCOPES)}",
                    file=sys.stderr,
                )
                return 2
            print(admin.create_api_key(s, args.name, scopes=scopes))
    elif args.command == "sweep":
        return _sweep_loop(rt, args.every)
    elif args.command == "prune":
        with rt.sessions.begin() as s:
            print(retention.prune(s, args.days or settings.retention_days))
    elif args.command == "verifactu-submit":
        return _submit_loop(rt, args.every)
    elif args.command == "verifactu-check":
        from invoicing import sif_log

        with rt.sessions.begin() as s:
            found = sif_log.check(s)
        for anomaly in found.anomalies:
            print(f"ANOMALY: {anomaly}")
        print(f"{found.records} records, {found.events} events: {len(found.anomalies)} anomalies")
        return 1 if found.anomalies else 0
    return 0


def _rotate(settings: Settings) -> int:
    try:
        counts = rotate_secret_key(settings)
    except ValueError as exc:  # a value no configured key opens: nothing was changed
        print(f"nothing rotated: {exc}", file=sys.stderr)
        return 1
    for column, count in counts.items():
        print(f"{column}: {count} re-encrypted")
    print(
        f"{sum(counts.values())} secrets now encrypted with PUENTE_SECRET_KEY alone; "
        "PUENTE_OLD_SECRET_KEYS can be removed"
    )
    return 0


PRUNE_EVERY_SECONDS = 3600
NOTIFY_EVERY_SECONDS = 20  # failed-run e-mails: "immediate" means within this
TICK_SECONDS = 2.0
RECONCILE_EVERY_SECONDS = 3600  # each CRM's won deals compared with what reached us
RECONCILE_WINDOW_DAYS = 7  # outbox events and due polls are looked at this often


def _submit_loop(rt: Runtime, every: float) -> int:
    """Submit queued records, waiting as long as the AEAT asks between submissions."""
    from actions.invoicing import invoicing_settings
    from invoicing import aeat

    settings = invoicing_settings(rt.services)
    if not settings.verifactu_url:
        print("PUENTE_VERIFACTU_URL is not set: records stay queued", file=sys.stderr)
        return 2
    cert = None
    if settings.verifactu_cert and settings.verifactu_key:
        cert = (str(settings.verifactu_cert), str(settings.verifactu_key))
    sender = aeat.SoapSender(settings.verifactu_url, cert)
    log = logging.getLogger("puente.verifactu")
    while True:
        with rt.sessions.begin() as s:
            report = aeat.submit_pending(s, sender)
        for error in report.errors:
            log.warning("VERI*FACTU submission: %s", error)
        if not every:
            return 1 if report.errors else 0
        time.sleep(max(every, report.wait_seconds))


def _sweep_loop(rt: Runtime, every: float) -> int:
    """Every `every` seconds: re-enqueue lost runs (and prune hourly). Between sweeps, every
    TICK_SECONDS: hand the outbox's events to the flows on event triggers, queue the REST
    hook deliveries that are due, and poll the flows on poll triggers that are due."""
    log = logging.getLogger("puente.sweeper")
    days = rt.settings.retention_days
    last_prune = last_sweep = last_reconcile = last_notify = 0.0
    while True:
        try:
            events.dispatch(rt)
            rest_hooks.claim_due(rt)  # public events to their REST hook subscribers
            if time.monotonic() - last_notify >= NOTIFY_EVERY_SECONDS:
                notifications.send_due(rt)  # failed runs, by e-mail to who should know
                last_notify = time.monotonic()
            for flow_id in polling.due(rt):
                polling.poll_flow(rt, flow_id)
            if time.monotonic() - last_sweep >= every:
                jobs.sweep(rt)
                lifecycle.sync(rt)  # webhooks registered at the sources, as flows need them
                last_sweep = time.monotonic()
            if time.monotonic() - last_reconcile > RECONCILE_EVERY_SECONDS:
                since = utcnow() - timedelta(days=RECONCILE_WINDOW_DAYS)
                crm.reconcile(rt, actions.CRM_APIS, since)  # lost won deals, each CRM
                last_reconcile = time.monotonic()
            if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                with rt.sessions.begin() as s:
                    pruned = retention.prune(s, days)
                if any(pruned.values()):
                    log.info("retention (%s days): pruned %s", days, pruned)
                last_prune = time.monotonic()
        except Exception:  # keep sweeping: a database or Redis blip must not stop the sweeper
            log.exception("sweep failed; trying again in %s s", every or 0)
            if not every:
                return 1
        if not every:
            return 0
        time.sleep(min(every, TICK_SECONDS))


if __name__ == "__main__":
    sys.exit(main())
