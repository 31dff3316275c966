"""How `dataplatform plan` scales with the catalog: 100, 500 and 1,800 event types.

For each size a synthetic catalog is written to a temporary directory (event schemas with
nested records and every kind of privacy policy, one endpoint per ten event types, a
stack file, and a link to this repository's `functions/`), loaded with `load_catalog` and
planned with `infra.plan.run_plan` — the whole program under mocks, as the CLI does.

Prints, per size: seconds to load the definitions, seconds to plan (load included; the
plan spreads over one worker process per CPU), CPU seconds of the plan across all its
processes (less sensitive than wall time to other work on the machine), the number of resources,
seconds per resource, and the per-resource time relative to the smallest catalog
(1.0 = perfectly linear). Target: 1,800 event types in under 60 s with
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500,1800", help="comma-separated event-type counts")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]

    print(
        f"{'event types':>11} {'endpoints':>9} {'load s':>7} {'plan s':>8} {'cpu s':>7} {'resources':>9} "
        f"{'s/resource':>10} {'vs smallest':>11}"
    )
    baseline: float | None = None
    for events in sizes:
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
        resources = plan.totals()["resources"]
        per_resource = seconds / resources
        baseline = baseline or per_resource
        print(
            f"{events:>11} {len(catalog.endpoints):>9} {load_seconds:>7.2f} {seconds:>8.2f} {cpu:>7.1f} {resources:>9} "
            f"{per_resource:>10.5f} {per_resource / baseline:>11.2f}"
        )
        if plan.violations:
            print(f"{'':>11} policy violations: {len(plan.violations)} (first: {plan.violations[0]})")


if __name__ == "__main__":
    main()
