"""Endpoint cron → the schedule syntaxes of BigQuery Data Transfer and Cloud Scheduler.

Definitions give an endpoint's schedule as a five-field cron expression in UTC (checked by
the loader). Cloud Scheduler takes cron as is, but a scheduled query (Data Transfer
Service) takes App Engine's "groc" syntax (`every day 04:00`, `every mon,fri 06:30`,
`1,15 of month 02:00`, `every 6 hours synchronized`). The two are not equally expressive,
so `dts_schedule` converts the forms that have an exact equivalent and raises
`ScheduleError` for the rest instead of silently running at other times:

| cron                  | DTS schedule                         |
|-----------------------|--------------------------------------|
| `M H * * *`           | `every day HH:MM`                    |
| `M H * * 1,3-5`       | `every mon,wed,thu,fri HH:MM`        |
| `M H 1,15 * *`        | `1,15 of month HH:MM`                |
| `M H 1 1,4,7,10 *`    | `1 of jan,apr,jul,oct HH:MM`         |
| `M H * 1,7 *`         | `every day of jan,jul HH:MM`         |
| `M H * 1,7 1`         | `every mon of jan,jul HH:MM`         |
| `0 */N * * *`         | `every N hours synchronized` (N divides 24) |
| `*/N * * * *`         | `every N minutes synchronized` (N divides 60) |

Not expressible (ScheduleError): several hours or minutes in one day (`0 4,16 * * *`),
a minute or hour step not dividing the hour/day, steps combined with other fields, and
day-of-month *and* day-of-week restricted together (cron ORs them; groc cannot).
Times are UTC in both syntaxes, as in the definitions.
"""

from __future__ import annotations

from datetime import timedelta

from dataplatform.errors import PlatformError

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_RANGES = {"minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12), "day of week": (0, 7)}


class ScheduleError(PlatformError):
    """A cron expression a scheduled query (DTS) cannot run on exactly."""


def dts_schedule(cron: str, *, where: str = "") -> str:
    """The Data Transfer Service schedule that fires exactly when `cron` does (UTC)."""
    fields = cron.split()
    place = f"{where}: " if where else ""
    if len(fields) != 5:
        raise ScheduleError(f"{place}schedule {cron!r} must have 5 cron fields (minute hour day-of-month month day-of-week)")
    minute, hour, dom, month, dow = fields

    def fail(why: str) -> ScheduleError:
        return ScheduleError(
            f"{place}schedule {cron!r} cannot be expressed as a BigQuery scheduled query: {why}. "
            "Use one time of day (e.g. '0 4 * * *', '30 5 * * 1-5', '0 3 1 * *') or an even "
            "interval ('0 */6 * * *', '*/30 * * * *'); see infra/schedule.py for the supported forms"
        )

    if minute.startswith("*/") and (hour, dom, month, dow) == ("*", "*", "*", "*"):
        step = _step(minute, 60, "minute", fail)
        return f"every {step} minutes synchronized"
    if minute.isdigit() and hour.startswith("*/") and (dom, month, dow) == ("*", "*", "*"):
        if int(minute) != 0:
            raise fail("an hourly step must start on the hour (minute 0)")
        step = _step(hour, 24, "hour", fail)
        return f"every {step} hours synchronized"
    if not (minute.isdigit() and hour.isdigit()):
        raise fail("a scheduled query runs at one time of day; minute and hour must be single numbers")
    m, h = _number(minute, "minute", fail), _number(hour, "hour", fail)
    time = f"{h:02d}:{m:02d}"

    if dom != "*" and dow != "*":
        raise fail("day of month and day of week are both restricted (cron runs on either, a scheduled query cannot)")
    months = "month" if month == "*" else ",".join(MONTHS[i - 1] for i in _values(month, "month", fail))
    if dom != "*":
        days = ",".join(str(d) for d in _values(dom, "day of month", fail))
        return f"{days} of {months} {time}"
    weekdays = "day" if dow == "*" else ",".join(DAYS[d % 7] for d in _ordered_weekdays(_values(dow, "day of week", fail)))
    if month == "*":
        return f"every {weekdays} {time}"
    return f"every {weekdays} of {months} {time}"


def deadline_cron(deadline: timedelta) -> str:
    """Daily cron at the time of day `deadline` after midnight UTC (`6h` → `0 6 * * *`).

    The freshness check of a daily partition runs when its deadline has passed: the
    partition for day D is due `deadline` after the end of D, i.e. at that time on D+1
    (or later days for deadlines of a day or more; `monitor` works out which partitions
    are due, the job only wakes it).
    """
    minutes = int(deadline.total_seconds() // 60) % (24 * 60)
    return f"{minutes % 60} {minutes // 60} * * *"


def _number(text: str, field: str, fail) -> int:
    low, high = _RANGES[field]
    value = int(text)
    if not low <= value <= high:
        raise fail(f"{field} {value} is out of range {low}-{high}")
    return value


def _step(text: str, whole: int, field: str, fail) -> int:
    step = text[2:]
    if not step.isdigit() or int(step) == 0:
        raise fail(f"{field} step {text!r} is not a positive number")
    n = int(step)
    if whole % n:
        raise fail(f"a {field} step of {n} does not divide {whole}, so runs would drift")
    return n


def _values(text: str, field: str, fail) -> list[int]:
    """`1,3-5` → [1, 3, 4, 5]; steps and names are not supported here."""
    out: list[int] = []
    for part in text.split(","):
        if "/" in part:
            raise fail(f"steps in the {field} field ({part!r}) are not supported")
        if "-" in part:
            first, _, last = part.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise fail(f"{field} {part!r} must be numbers")
            lo, hi = _number(first, field, fail), _number(last, field, fail)
            if lo > hi:
                raise fail(f"{field} range {part!r} is reversed")
            out.extend(range(lo, hi + 1))
        elif part.isdigit():
            out.append(_number(part, field, fail))
        else:
            raise fail(f"{field} {part!r} must be a number, a list or a range")
    return sorted(set(out))


def _ordered_weekdays(days: list[int]) -> list[int]:
    """Cron allows 0 and 7 for Sunday; list each day once, Monday first as groc does."""
    unique = sorted({d % 7 for d in days}, key=lambda d: (d == 0, d))
    return unique
