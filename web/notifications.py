"""Failed runs by e-mail, to the people who should know.

Who: the flow's owner (whoever made it in the UI), or every active admin for a flow without
one (made with the API or a template by a program). How often, as each person chooses in
"Mi cuenta": at once ("immediate": within a sweep, a few seconds), a daily digest ("daily":
the day's failures, sent from 08:00 Madrid time), or never ("off").

Fed by the `run.failed` public events (connector.public_events), read past a cursor kept on
each person's row, so every failure is told once even if the sweeper stops in between; a
person's first look sets the cursor without sending the failures of before they joined.
Called by the sweeper (web.cli sweep). Messages are in the language each person uses the app
in (users.lang), with links to each run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.invoicing import MAIL
from connector import messages
from connector.models import Flow, PublicEvent, User
from connector.public_events import RUN_FAILED
from connector.runtime import Runtime
from database import utcnow
from invoicing import mailer
from web.i18n import LOCALES, translate

log = logging.getLogger(__name__)
MADRID = ZoneInfo("Europe/Madrid")
DIGEST_HOUR = time(8)
MAX_LISTED = 50  # failures listed in one message; the rest are counted


def send_due(rt: Runtime, now: datetime | None = None) -> int:
    """Send what is due to everyone; the number of messages sent."""
    settings = rt.services.get(MAIL)
    if settings is None or not settings.sender:
        return 0  # no mail configured: the failures wait on the runs page
    now = now or utcnow()
    sent = 0
    with rt.sessions() as s:
        ids = s.scalars(select(User.id).where(User.active, User.notify != "off")).all()
        newest = s.scalar(select(func.max(PublicEvent.id)).where(PublicEvent.type == RUN_FAILED))
    for user_id in ids:
        try:
            with rt.sessions.begin() as s:
                user = s.scalar(
                    select(User).where(User.id == user_id).with_for_update(skip_locked=True)
                )
                if user is None:
                    continue  # another sweeper has it
                message = _due(s, user, newest, now, rt.settings.public_url)
                if message is not None:
                    mailer.send_text(settings, user.email, *message)
                    sent += 1
        except mailer.InvoicingError as exc:  # not sent: the cursor stays, tried again later
            log.warning("failed-run notice to user %s not sent: %s", user_id, exc)
    return sent


def _due(
    s: Session, user: User, newest: int | None, now: datetime, public_url: str
) -> tuple[str, str] | None:
    """The (subject, text) due to `user` now, with their cursor moved up to `newest` (the
    latest run.failed event); None if nothing is."""
    if user.notified_event_id is None:  # first look: from now on, not what came before
        user.notified_event_id = newest or 0
        return None
    local = now.astimezone(MADRID)
    if user.notify == "daily" and (local.time() < DIGEST_HOUR or user.digest_on == local.date()):
        return None
    if newest is None or newest <= user.notified_event_id:
        if user.notify == "daily":
            user.digest_on = local.date()
        return None
    events = s.scalars(
        select(PublicEvent)
        .where(
            PublicEvent.type == RUN_FAILED,
            PublicEvent.id > user.notified_event_id,
            PublicEvent.id <= newest,
        )
        .order_by(PublicEvent.id)
    ).all()
    user.notified_event_id = newest
    if user.notify == "daily":
        user.digest_on = local.date()
    mine = _theirs(s, user, events)
    if not mine:
        return None
    return _message(mine, user.notify == "daily", public_url, user.lang)


def _theirs(s: Session, user: User, events: Sequence[PublicEvent]) -> list[dict[str, Any]]:
    """The failures of the flows `user` owns, and, for an admin, of the flows nobody owns."""
    flow_ids = {e.data.get("flow_id") for e in events}
    owners: dict[int, int | None] = {
        flow_id: owner_id
        for flow_id, owner_id in s.execute(
            select(Flow.id, Flow.owner_id).where(Flow.id.in_(flow_ids))
        )
    }
    found = []
    for event in events:
        owner = owners.get(int(event.data.get("flow_id") or 0))
        if owner == user.id or (owner is None and user.role == "admin"):
            found.append(event.data)
    return found


def _message(
    failures: list[dict[str, Any]], digest: bool, public_url: str, lang: str
) -> tuple[str, str]:
    def say(key: str, **fields: object) -> str:
        return translate(f"mail_{key}", lang).format(**fields)

    count = len(failures)
    kind = "digest" if digest else "one" if count == 1 else "many"
    subject = say(f"subject_{kind}", count=count, flow=failures[0].get("flow_name"))
    lines = [say(f"intro_{kind}"), ""]
    for failure in failures[:MAX_LISTED]:
        lines += _described(failure, public_url, lang)
    if count > MAX_LISTED:
        lines.append(
            say("more", count=count - MAX_LISTED, link=f"{public_url}/ui/runs?status=failed")
        )
    lines += ["", say("open_each"), say("choose", link=f"{public_url}/ui/account/password")]
    return subject, "\n".join(lines)


def _described(failure: dict[str, Any], public_url: str, lang: str) -> list[str]:
    keys = failure.get("keys") or {}
    about = ", ".join(f"{name}: {value}" for name, value in keys.items())
    when = datetime.fromisoformat(failure["failed_at"])
    error = failure.get("error") or {}
    status = "dead" if failure.get("status") == "dead" else "failed"
    line = translate("mail_run", lang).format(
        flow=failure.get("flow_name"),
        run=failure.get("run_id"),
        status=translate(f"mail_status_{status}", lang),
        when=format_datetime(when, "medium", tzinfo=MADRID, locale=LOCALES[lang]),
    )
    lines = [line + (f" — {about}" if about else "")]
    for problem in (error.get("errors") or [])[:5]:
        lines.append(f"    {problem.get('path') or ''}: {messages.localized(problem, lang)}")
    lines.append(f"    {public_url}/ui/runs/{failure.get('run_id')}")
    return lines
