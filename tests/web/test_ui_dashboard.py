"""The dashboard: runs per hour by status, success rate, the queue, time from won to draft,
and won → invoiced → paid by week, as SVG charts with their figures."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

from connector import stats
from database import utcnow
from invoicing import reports
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal, signed_in
from web.demo import DEMO_FLOW


def shown(page: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}">([^<]*)<', page)
    assert found, name
    return found.group(1)


def test_the_dashboard_shows_runs_success_the_queue_and_won_to_draft(rt, client):
    signed_in(rt, client, "viewer")
    good = make_hook(rt)
    broken = copy.deepcopy(DEMO_FLOW)
    broken["steps"][1]["input"]["currency"] = "USD"
    bad = make_hook(rt, broken, checked=False)
    won = {"won_at": utcnow().isoformat()}  # won this week
    for _ in range(3):
        post_deal(client, good, deal(**won))
    post_deal(client, bad, deal(**won))
    drain(rt)
    post_deal(client, good, deal(**won))  # left in the queue

    page = client.get("/ui/dashboard").get_data(as_text=True)

    assert shown(page, "runs-24h") == "5"
    assert shown(page, "success-rate") == "75,0 %"  # 3 of the 4 finished
    assert shown(page, "queue-depth") == "1"
    assert shown(page, "won-to-draft").startswith("p50 ")
    assert "—" not in shown(page, "won-to-draft")
    runs_svg, weeks_svg = re.findall(r"<svg class=\"chart\".*?</svg>", page, re.S)
    assert runs_svg.count("<rect ") >= 3  # succeeded, failed and queued (an hour may split them)
    assert weeks_svg.count("<rect ") == 1  # this week's won deals; nothing issued or paid
    week_row = r"<tr><td>\d{1,2} [a-z]+ \d{4}</td>((?:<td class=\"num\">\d+</td>){3})"
    weeks = re.findall(week_row, page)
    assert len(weeks) == 12
    # this week: four deals recorded (the broken flow records its deal, then fails), none issued
    assert re.findall(r"\d+", weeks[0]) == ["4", "0", "0"]


def test_runs_per_hour_buckets_by_hour_and_percentiles_are_nearest_rank(rt):
    now = utcnow()
    with rt.sessions() as s:
        hours = stats.runs_per_hour(s, now, 24)
    assert len(hours) == 24 and hours[-1].start == now.replace(minute=0, second=0, microsecond=0)
    assert hours[0].start == hours[-1].start - timedelta(hours=23)
    values = [timedelta(minutes=m) for m in (5, 1, 3, 2, 4)]
    assert reports.percentile(values, 0.5) == timedelta(minutes=3)
    assert reports.percentile(values, 0.95) == timedelta(minutes=5)
    assert reports.percentile([], 0.5) is None
