"""Cron → BigQuery scheduled-query (DTS) schedules, and the monitor job's deadline cron."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra.schedule import ScheduleError, deadline_cron, dts_schedule


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 4 * * *", "every day 04:00"),
        ("30 3 * * *", "every day 03:30"),
        ("15 23 * * 1-5", "every mon,tue,wed,thu,fri 23:15"),
        ("0 6 * * 0", "every sun 06:00"),
        ("0 6 * * 7,1", "every mon,sun 06:00"),
        ("0 2 1,15 * *", "1,15 of month 02:00"),
        ("0 0 1 1,4,7,10 *", "1 of jan,apr,jul,oct 00:00"),
        ("5 1 * 6-8 *", "every day of jun,jul,aug 01:05"),
        ("0 9 * 12 1", "every mon of dec 09:00"),
        ("0 */6 * * *", "every 6 hours synchronized"),
        ("*/30 * * * *", "every 30 minutes synchronized"),
    ],
)
def test_expressible_cron_converts_exactly(cron: str, expected: str):
    assert dts_schedule(cron) == expected


def test_every_example_endpoint_schedule_converts(example_catalog):
    for endpoint in example_catalog.endpoints:
        assert dts_schedule(endpoint.schedule).startswith("every day ")


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 4,16 * * *", "one time of day"),
        ("0-30 4 * * *", "one time of day"),
        ("0 4 1 * 1", "both restricted"),
        ("*/7 * * * *", "does not divide 60"),
        ("0 */5 * * *", "does not divide 24"),
        ("30 */6 * * *", "must start on the hour"),
        ("0 4 */2 * *", "steps in the day of month"),
        ("0 4 * * mon", "must be a number"),
        ("0 4 5-2 * *", "reversed"),
        ("0 25 * * *", "out of range"),
        ("0 4 * *", "5 cron fields"),
    ],
)
def test_inexpressible_cron_is_refused_with_the_reason(cron: str, why: str):
    with pytest.raises(ScheduleError, match="workflows/x.yaml: schedule") as error:
        dts_schedule(cron, where="workflows/x.yaml")
    assert why in str(error.value)


@pytest.mark.parametrize(
    ("deadline", "cron"),
    [(timedelta(hours=6), "0 6 * * *"), (timedelta(hours=4, minutes=30), "30 4 * * *"), (timedelta(hours=30), "0 6 * * *"), (timedelta(0), "0 0 * * *")],
)
def test_deadline_cron_runs_daily_at_the_deadline(deadline: timedelta, cron: str):
    assert deadline_cron(deadline) == cron
