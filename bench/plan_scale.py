"""How `dataplatform plan` scales with the catalog: 100, 500 and 1,800 event types.

For each size a synthetic catalog is written to a temporary directory (event schemas with
nested records and every kind of privacy policy, one endpoint per ten event types, a
stack file, and a link to this repository's `functions/`), loaded with `load_catalog` and
planned with `infra.plan.run_plan` — the whole program under mocks, as the CLI does.

Prints, per size: seconds to load the definitions, seconds to plan (load included; from
200 event types the plan spreads over one worker process per CPU), CPU seconds of the
plan across all its processes, the number of resources, wall seconds per resource, CPU
milliseconds per resource, and CPU per resource relative to the smallest catalog
(1.0 = perfectly linear; CPU rather than wall time because the smallest size runs in one
process and the others in several, and because CPU time is less disturbed by other work
on the machine). A warm-up plan of 5 event types runs first. Target: 1,800 event types in under 60 s with
near-linear growth. Numbers are printed, never asserted.

    .venv/bin/python bench/plan_scale.py [--sizes 100,500,1800]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]

from dataplatform.definitions.loader import load_catalog  # noqa: E402
from infra.plan import run_plan  # noqa: E402

DOMAINS = 20
EVENTS_PER_ENDPOINT = 10

SCHEMA = """\
name: {name}
version: 1
owner: team-{domain}
domain: {domain}
description: Synthetic event {index} for the plan benchmark.
retention_days: {retention}
partitioning: {partitioning}
readers:
  - group:{domain}-analysts@example.com
fields:
  - name: user_id
    type: STRING
    required: true
    privacy: user_id
    description: The subject.
  - name: item_id
    type: STRING
    required: true
    description: What the event is about.
  - name: amount
    type: INT64
    description: A count.
  - name: email
    type: STRING
    privacy: encrypt
    description: Contact address.
  - name: context
    type: RECORD
    description: Where it happened.
    fields:
      - name: ip
        type: STRING
        privacy: truncate_ip
        description: Client address.
      - name: device_id
        type: STRING
        privacy: hash
        description: Installation id.
      - name: country
        type: STRING
        description: Country code.
"""

ENDPOINT = """\
name: {name}
owner: team-{domain}
domain: {domain}
description: Synthetic daily endpoint {index}.
schedule: "{minute} 4 * * *"
retention_days: 730
readers:
  - group:{domain}-analysts@example.com
freshness_deadline: 8h
checks:
  - type: not_null
    columns: [date, item_id]
"""

ENDPOINT_SQL = """\
SELECT
  @run_date AS date,
  item_id,
  COUNT(*) AS events,
  COUNT(DISTINCT user_pseudonym) AS users,
  SUM(amount) AS amount
FROM events.{table}_dedup
WHERE DATE(event_time) = @run_date
GROUP BY item_id
"""

STACK = """\
config:
  gcp:project: bench-dataplatform
  gcp:region: europe-west1
  dataplatform:alertEmail: oncall@example.com
"""


def write_catalog(root: Path, events: int) -> None:
    (root / "schemas").mkdir()
    (root / "workflows").mkdir()
    (root / "functions").symlink_to(REPO / "functions", target_is_directory=True)
    (root / "Pulumi.bench.yaml").write_text(STACK)
    for i in range(events):
        domain = f"domain{i % DOMAINS:02d}"
        name = f"event_{i:05d}"
        (root / "schemas" / f"{name}.yaml").write_text(
            SCHEMA.format(
                name=name,
                domain=domain,
                index=i,
                retention=30 + i % (380 if i % 7 == 0 else 700),  # hourly tables: at most 10,000 partitions
                partitioning="HOUR" if i % 7 == 0 else "DAY",
            )
        )
        if i % EVENTS_PER_ENDPOINT == 0:
            endpoint = f"daily_{name}"
            (root / "workflows" / f"{endpoint}.yaml").write_text(
                ENDPOINT.format(name=endpoint, domain=domain, index=i, minute=i % 60)
            )
            (root / "workflows" / f"{endpoint}.sql").write_text(ENDPOINT_SQL.format(table=f"{name}_v1"))


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the plan's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def plan_once(events: int) -> dict:
    """Write a catalog of `events` event types, load it, plan it; the measurements."""
    with tempfile.TemporaryDirectory(prefix=f"plan-scale-{events}-") as tmp:
        root = Path(tmp)
        write_catalog(root, events)
        started = time.perf_counter()
        catalog = load_catalog(root)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        cpu_before = _cpu_seconds()
        plan = run_plan(root, "bench")
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
    return {
        "endpoints": len(catalog.endpoints),
        "load": load_seconds,
        "seconds": seconds,
        "cpu": cpu,
        "resources": plan.totals()["resources"],
        "violations": plan.violations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500,1800", help="comma-separated event-type counts")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]

    plan_once(5)  # warm-up: imports and first-use caches are not part of any size's cost
    print(
        f"{'event types':>11} {'endpoints':>9} {'load s':>7} {'plan s':>8} {'cpu s':>7} {'resources':>9} "
        f"{'s/resource':>10} {'cpu ms/res':>10} {'cpu/res vs smallest':>19}"
    )
    baseline: float | None = None
    for events in sizes:
        m = plan_once(events)
        per_resource = m["seconds"] / m["resources"]
        cpu_per_resource = m["cpu"] / m["resources"]
        baseline = baseline or cpu_per_resource
        print(
            f"{events:>11} {m['endpoints']:>9} {m['load']:>7.2f} {m['seconds']:>8.2f} {m['cpu']:>7.1f} {m['resources']:>9} "
            f"{per_resource:>10.5f} {cpu_per_resource * 1000:>10.3f} {cpu_per_resource / baseline:>19.2f}"
        )
        if m["violations"]:
            print(f"{'':>11} policy violations: {len(m['violations'])} (first: {m['violations'][0]})")


if __name__ == "__main__":
    main()
