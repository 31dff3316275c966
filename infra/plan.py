"""`dataplatform plan`: the Pulumi program run offline under mocks, as a readable resource tree.

It answers "what would this stack deploy?" without a cloud account or the Pulumi CLI:
`run_plan` reads `Pulumi.<stack>.yaml`, loads the definitions, builds the functions archive
and runs `program.compose` in-process with `infra.mocks` standing in for the engine and
the provider. Every resource the program registers is collected with its type, name,
component and inputs (as the engine would receive them); the text rendering groups them
by component with key properties and totals, `--json` gives everything.

It is an offline statement of intent, NOT a diff: it knows nothing about what is already
deployed (no state, no refresh). `pulumi preview` against the real stack is the diff.
Secrets are never shown: encrypted `secure:` config cannot be read offline and appears as
`[secret]`, and every secret input is masked.

Speed (bench/plan_scale.py): the mock engine is the Pulumi SDK's own, which spends about
2 ms of CPU per resource on bookkeeping (futures and outputs for every property). Three
things keep a plan of thousands of event types fast and linear, none of them changing the
result:
- large catalogs are planned in one process per CPU (`shards`: an endpoint plans with
  the tables it reads; every process declares the platform, one copy is kept);
- work only a real engine would use is skipped while the program runs: the SDK's
  source-position stack walk (`_get_stack_trace`) and its per-resource "mock URN" chain
  (`create_urn`, computed directly instead; see `_engine_only_work_skipped`);
- Python's cyclic garbage collector is paused for the run: full collections rescan every
  live resource object, which made large plans quadratic. Everything is restored afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime.proto import source_pb2

from dataplatform.compile import sql as sqlc
from dataplatform.definitions.loader import Catalog, load_catalog
from dataplatform.errors import PlatformError
from infra import mocks, policies
from infra.archive import FunctionsArchive, build_archive
from infra.config import SECRET_PLACEHOLDER, StackConfig, StackFile, read_stack_file
from infra.program import compose

OFFLINE_NOTE = (
    "OFFLINE INTENT: the resources the Pulumi program declares for this stack, computed under mocks "
    "(no cloud calls, no state). This is not a diff against what is deployed; run `pulumi preview` for that."
)
SECRET = "[secret]"

KEY_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "gcp:projects/service:Service": ("service",),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:kms/keyRing:KeyRing": ("name", "location"),
    "gcp:kms/cryptoKey:CryptoKey": ("name", "rotationPeriod", "purpose"),
    "gcp:firestore/database:Database": ("name", "pointInTimeRecoveryEnablement", "deleteProtectionState"),
    "gcp:storage/bucket:Bucket": ("name", "uniformBucketLevelAccess", "publicAccessPrevention"),
    "gcp:storage/bucketObject:BucketObject": ("name", "bucket"),
    "gcp:pubsub/schema:Schema": ("name", "type"),
    "gcp:pubsub/topic:Topic": ("name", "labels.data", "schemaSettings.encoding"),
    "gcp:pubsub/subscription:Subscription": (
        "name",
        "topic",
        "bigqueryConfig.table",
        "bigqueryConfig.useTopicSchema",
        "bigqueryConfig.writeMetadata",
        "pushConfig.pushEndpoint",
        "messageRetentionDuration",
    ),
    "gcp:cloudfunctionsv2/function:Function": (
        "name",
        "buildConfig.runtime",
        "buildConfig.entryPoint",
        "buildConfig.source.storageSource.object",
        "eventTrigger.pubsubTopic",
        "eventTrigger.retryPolicy",
        "serviceConfig.serviceAccountEmail",
        "serviceConfig.ingressSettings",
    ),
    "gcp:eventarc/trigger:Trigger": ("id",),
    "gcp:bigquery/dataset:Dataset": ("datasetId", "location", "defaultPartitionExpirationMs"),
    "gcp:bigquery/table:Table": (
        "datasetId",
        "tableId",
        "timePartitioning.type",
        "timePartitioning.field",
        "timePartitioning.expirationMs",
        "clusterings",
        "requirePartitionFilter",
        "deletionProtection",
        "view.query",
    ),
    "gcp:bigquery/dataTransferConfig:DataTransferConfig": (
        "dataSourceId",
        "schedule",
        "params.destination_table_name_template",
        "params.write_disposition",
        "serviceAccountName",
        "notificationPubsubTopic",
    ),
    "gcp:cloudscheduler/job:Job": ("name", "schedule", "httpTarget.uri", "httpTarget.oidcToken.serviceAccountEmail"),
    "gcp:secretmanager/secret:Secret": ("secretId",),
    "gcp:secretmanager/secretVersion:SecretVersion": ("secret", "secretData"),
    "gcp:monitoring/notificationChannel:NotificationChannel": ("type", "displayName"),
    "gcp:monitoring/alertPolicy:AlertPolicy": ("displayName", "conditions.0.conditionThreshold.filter"),
    "gcp:logging/metric:Metric": ("name", "filter"),
    "gcp:apigateway/api:Api": ("apiId",),
    "gcp:apigateway/apiConfig:ApiConfig": ("apiConfigIdPrefix", "gatewayConfig.backendConfig.googleServiceAccount"),
    "gcp:apigateway/gateway:Gateway": ("gatewayId", "region"),
}
IAM_TARGETS = ("topic", "subscription", "cryptoKeyId", "bucket", "secretId", "serviceAccountId", "datasetId", "tableId", "name", "project")


@dataclass(frozen=True)
class PlannedResource:
    """One registered resource (or component) and where it sits in the tree."""

    urn: str
    type: str
    name: str
    component: str
    """`<component type> <name>` of the nearest component ancestor; "" at the stack level."""
    parent: str
    custom: bool
    read: bool
    protect: bool
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """Outputs a component registered (empty for custom resources)."""

    @property
    def short_type(self) -> str:
        """`gcp:pubsub/topic:Topic` → `pubsub.Topic`; components keep their own name."""
        if self.type.startswith("gcp:"):
            module = self.type.split(":")[1].split("/")[0]
            return f"{module}.{self.type.rsplit(':', 1)[1]}"
        return self.type.rsplit(":", 1)[-1]

    def key_properties(self) -> dict[str, Any]:
        paths = KEY_PROPERTIES.get(self.type)
        if paths is None and self.type.endswith(("IAMMember", "IamMember")):
            paths = ("role", "member", *IAM_TARGETS)
        if paths is None:
            paths = ("name",)
        out: dict[str, Any] = {}
        for path in paths:
            value = _dig(self.inputs, path)
            if value is not None and value != "":
                out[path] = value
        return out


@dataclass(frozen=True)
class Plan:
    """Every resource the program declares for one stack, offline."""

    stack: str
    project: str
    region: str
    resources: tuple[PlannedResource, ...]
    exports: Mapping[str, Any]
    notes: tuple[str, ...]
    seconds: float
    violations: tuple[policies.Violation, ...] = ()
    """What the policy pack would report for these resources (`infra/policies.py`)."""

    @property
    def components(self) -> list[PlannedResource]:
        return [r for r in self.resources if not r.custom]

    @property
    def cloud_resources(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.custom]

    def by_component(self) -> dict[str, list[PlannedResource]]:
        groups: dict[str, list[PlannedResource]] = {f"{c.short_type} {c.name}": [] for c in self.components}
        for resource in self.cloud_resources:
            groups.setdefault(resource.component, []).append(resource)
        return groups

    def totals(self) -> dict[str, Any]:
        cloud = self.cloud_resources
        return {
            "resources": len(cloud),
            "read_only": sum(1 for r in cloud if r.read),
            "protected": sum(1 for r in cloud if r.protect),
            "components": dict(sorted(Counter(c.short_type for c in self.components).items())),
            "by_type": dict(sorted(Counter(r.short_type for r in cloud).items())),
        }


# --------------------------------------------------------------------------- running


def run_plan(root: str | Path = ".", stack: str | None = None, *, workers: int | None = None) -> Plan:
    """Run the program of `root` for `stack` under mocks and collect what it declares.

    `workers` processes share the work (default: one per available CPU for catalogs of
    more than `PARALLEL_FROM` event types, else one, in this process). Each runs the same
    `compose` with the platform and a share of the event types and endpoints; an endpoint
    always plans in the same process as every table it reads, so each component is
    declared exactly as in a single run (the tests compare the two).
    """
    with _no_cyclic_gc():
        return _plan(Path(root), stack, workers)


def _plan(root: Path, stack: str | None, workers: int | None) -> Plan:
    started = time.perf_counter()
    stack_file = read_stack_file(root, stack)
    catalog = load_catalog(root)
    archive = build_archive(root)
    values = stack_file.values
    notes = [
        f"{key} is encrypted or not set in Pulumi.{stack_file.stack}.yaml; the plan uses the placeholder {SECRET_PLACEHOLDER}"
        for key in stack_file.placeholders
    ]
    if workers is None:
        workers = default_workers(len(catalog.schemas))
    groups = shards(catalog, workers)
    if len(groups) <= 1:
        resources, exports = _run_program(stack_file, catalog, archive, None)
    else:
        resources, exports = _run_sharded(stack_file, catalog, archive, groups)
    resources.sort(key=_tree_order)
    violations = policies.check_resources(
        policies.Checked(r.type, r.name, r.urn, r.inputs, r.protect) for r in resources if r.custom
    )
    return Plan(
        stack=stack_file.stack,
        project=values.get("gcp:project", ""),
        region=values.get("gcp:region", ""),
        resources=tuple(resources),
        exports=exports,
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        violations=tuple(violations),
    )


PARALLEL_FROM = 200
"""Below this many event types a plan runs in-process: forking costs more than it saves."""


def default_workers(event_types: int) -> int:
    if event_types < PARALLEL_FROM:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def shards(catalog: Catalog, workers: int) -> list[frozenset[str]]:
    """Event keys and endpoint names split into `workers` shards of similar size.

    An endpoint and everything it reads (event types, other endpoints) form one unit that
    is never split: the endpoint's component references those tables' resources.
    """
    if workers <= 1:
        return [frozenset({s.key for s in catalog.schemas} | {e.name for e in catalog.endpoints})]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner = {s.table_ref: s.key for s in catalog.schemas} | {e.table_ref: e.name for e in catalog.endpoints}
    for schema in catalog.schemas:
        find(schema.key)
    for endpoint in catalog.endpoints:
        find(endpoint.name)
        for ref in sqlc.upstream_refs(endpoint.sql):
            if ref in owner:
                parent[find(owner[ref])] = find(endpoint.name)
    units: dict[str, set[str]] = {}
    for member in list(parent):
        units.setdefault(find(member), set()).add(member)
    buckets: list[set[str]] = [set() for _ in range(workers)]
    for unit in sorted(units.values(), key=lambda u: (-len(u), min(u))):
        min(buckets, key=len).update(unit)
    return [frozenset(b) for b in buckets if b]


def _run_program(
    stack_file: StackFile, catalog: Catalog, archive: FunctionsArchive, include: frozenset[str] | None
) -> tuple[list[PlannedResource], dict[str, Any]]:
    """`compose` under fresh mocks in this process: every registration, and the stack exports."""
    values = stack_file.values
    pulumi.runtime.set_all_config(dict(values), list(stack_file.secret_keys))
    monitor = mocks.install(
        project=values.get("gcp:project", "unset-project"),
        region=values.get("gcp:region", "unset-region"),
        stack=stack_file.stack,
        project_number=values.get("dataplatform:projectNumber"),
    )
    exports: dict[str, Any] = {}

    def program() -> pulumi.Output:
        deployment = compose(catalog, StackConfig.from_pulumi(), archive, include=include)
        return pulumi.Output.from_input(deployment.exports).apply(exports.update)

    with _engine_only_work_skipped():
        pulumi.runtime.test(program)()
    registrations = monitor.registrations
    resources = [
        PlannedResource(
            urn=reg.urn,
            type=reg.type,
            name=reg.name,
            component=_component_of(reg.parent, registrations),
            parent=reg.parent,
            custom=reg.custom,
            read=reg.read,
            protect=reg.protect,
            inputs=_clean(reg.inputs),
            outputs=_clean(reg.component_outputs) if not reg.custom else {},
        )
        for reg in registrations.values()
    ]
    return resources, _clean(exports)


_SHARED: dict[str, Any] = {}
"""Inputs of a sharded plan, set before the workers fork (so they are inherited, not pickled)."""

PLATFORM_COMPONENT = "Platform platform"


def _plan_shard(index: int) -> tuple[list[PlannedResource], dict[str, Any]] | str:
    """One worker's share; a PlatformError comes back as its message (custom errors may not pickle)."""
    asyncio.set_event_loop(asyncio.new_event_loop())  # never reuse the parent's loop or its threads
    gc.disable()  # inherited from the parent already; explicit because the worker depends on it
    groups = _SHARED["groups"]
    try:
        resources, exports = _run_program(_SHARED["stack_file"], _SHARED["catalog"], _SHARED["archive"], groups[index])
    except PlatformError as exc:
        return str(exc)
    if index > 0:  # every shard declares the platform; keep one copy
        resources = [
            r for r in resources if r.component != PLATFORM_COMPONENT and f"{r.short_type} {r.name}" != PLATFORM_COMPONENT
        ]
    return resources, exports


def _run_sharded(
    stack_file: StackFile, catalog: Catalog, archive: FunctionsArchive, groups: list[frozenset[str]]
) -> tuple[list[PlannedResource], dict[str, Any]]:
    _SHARED.update(stack_file=stack_file, catalog=catalog, archive=archive, groups=groups)
    try:
        with multiprocessing.get_context("fork").Pool(len(groups) - 1) as pool:
            others = pool.map_async(_plan_shard, range(1, len(groups)), chunksize=1)
            first = _run_program(stack_file, catalog, archive, groups[0])  # this process takes shard 0
            results = [first, *others.get()]
    finally:
        _SHARED.clear()
    for result in results:
        if isinstance(result, str):
            raise PlatformError(result)
    resources: list[PlannedResource] = []
    exports: dict[str, Any] = {}
    for shard_resources, shard_exports in results:
        resources.extend(shard_resources)
        for key, value in shard_exports.items():
            if isinstance(value, Mapping):
                exports.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                exports[key] = sorted({*exports.get(key, []), *value})
            else:
                exports.setdefault(key, value)
    return resources, exports


COMPONENT_ORDER = {"Platform": 0, "EventPipeline": 1, "DataEndpoint": 2}


def _tree_order(resource: PlannedResource) -> tuple:
    """Components in a fixed order (Platform, pipelines, endpoints; by name), then type and name."""
    label = resource.component if resource.custom else f"{resource.short_type} {resource.name}"
    kind, _, name = label.partition(" ")
    return (COMPONENT_ORDER.get(kind, 3), name, resource.custom, resource.type, resource.name)


@contextlib.contextmanager
def _engine_only_work_skipped() -> Iterator[None]:
    """Skip SDK work whose result only the real engine (or no engine) would use.

    - `_get_stack_trace`: source positions for the engine's diagnostics, one stack walk per
      resource; the mock engine ignores them.
    - `create_urn` as called while registering: the SDK computes a "mock URN" for every
      resource through five chained Outputs, used only when no engine is attached. Here an
      engine (the mock monitor) always is, so the same URN is computed directly (same value:
      `fast_create_urn`), and anything else falls back to the SDK's function.
    """
    stack_trace, urn = pulumi_resource._get_stack_trace, pulumi_resource.create_urn
    empty = source_pb2.StackTrace()
    pulumi_resource._get_stack_trace = lambda: empty
    pulumi_resource.create_urn = fast_create_urn
    try:
        yield
    finally:
        pulumi_resource._get_stack_trace, pulumi_resource.create_urn = stack_trace, urn


_SDK_CREATE_URN = pulumi_resource.create_urn


def fast_create_urn(name: Any, type_: Any, parent: Any = None, project: str | None = None, stack: str | None = None) -> pulumi.Output:
    """`pulumi.runtime.resource.create_urn` without the Output chain when every part is a string."""
    if not (isinstance(name, str) and isinstance(type_, str) and (parent is None or isinstance(parent, str))):
        return _SDK_CREATE_URN(name, type_, parent, project, stack)
    if parent:
        prefix = parent[: parent.rfind("::")] + "$"
    else:
        prefix = f"urn:pulumi:{stack or pulumi.get_stack()}::{project or pulumi.get_project()}::"
    return pulumi.Output.from_input(f"{prefix}{type_}::{name}")


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic GC: a plan allocates millions of long-lived objects and frees few."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Hand everything allocated meanwhile to the oldest generation in one step,
            # instead of letting the next young collection scan it all.
            gc.freeze()
            gc.enable()
            gc.unfreeze()


def _component_of(parent: str, registrations: Mapping[str, mocks.Registration]) -> str:
    while parent:
        reg = registrations.get(parent)
        if reg is None:
            return ""
        if not reg.custom:
            return f"{reg.type.rsplit(':', 1)[-1]} {reg.name}"
        parent = reg.parent
    return ""


def _clean(value: Any) -> Any:
    """Secrets masked, integral numbers as ints (the wire format has only doubles), assets by path."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return {"asset": getattr(value, "path", type(value).__name__)}
    return value


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


# --------------------------------------------------------------------------- rendering


def to_json(plan: Plan) -> dict[str, Any]:
    """The whole plan as one JSON-able object: every resource with its inputs, grouped by component."""
    components = []
    by_urn = {c.urn: c for c in plan.components}
    groups = plan.by_component()
    for label, resources in groups.items():
        component = next((c for c in by_urn.values() if f"{c.short_type} {c.name}" == label), None)
        components.append(
            {
                "component": label or "(stack)",
                "type": component.type if component else "pulumi:pulumi:Stack",
                "name": component.name if component else plan.stack,
                "urn": component.urn if component else "",
                "outputs": component.outputs if component else {},
                "resources": [
                    {
                        "type": r.type,
                        "name": r.name,
                        "urn": r.urn,
                        "read": r.read,
                        "protect": r.protect,
                        "key": r.key_properties(),
                        "inputs": r.inputs,
                    }
                    for r in resources
                ],
            }
        )
    return {
        "kind": "offline-intent",
        "note": OFFLINE_NOTE,
        "stack": plan.stack,
        "project": plan.project,
        "region": plan.region,
        "components": components,
        "totals": plan.totals(),
        "exports": plan.exports,
        "policies": {
            "checked": [p.name for p in policies.POLICIES],
            "violations": [{"policy": v.policy, "urn": v.urn, "message": v.message} for v in plan.violations],
        },
        "notes": list(plan.notes),
    }


def render_text(plan: Plan, *, width: int = 160) -> str:
    """The resource tree by component: type, name and key properties, then totals."""
    lines = [
        f"dataplatform plan: stack {plan.stack!r}, project {plan.project!r}, region {plan.region!r}",
        OFFLINE_NOTE,
        "",
    ]
    for label, resources in plan.by_component().items():
        lines.append(f"{label or '(stack)'}  [{len(resources)} resources]")
        for r in resources:
            flags = "".join((" (read)" if r.read else "", " (protected)" if r.protect else ""))
            props = "  ".join(f"{k}={_short(v)}" for k, v in r.key_properties().items())
            line = f"  {r.short_type:<32} {r.name}{flags}  {props}".rstrip()
            lines.append(line if len(line) <= width else line[: width - 1] + "…")
        lines.append("")
    totals = plan.totals()
    lines.append("Totals")
    lines.append(f"  resources: {totals['resources']} (read-only: {totals['read_only']}, protected: {totals['protected']})")
    lines.append("  components: " + ", ".join(f"{k} {v}" for k, v in totals["components"].items()))
    for kind, count in totals["by_type"].items():
        lines.append(f"  {kind:<32} {count}")
    lines.append("")
    if plan.violations:
        lines.append(f"Policies: {len(plan.violations)} violation(s)")
        lines.extend(f"  {v}" for v in plan.violations)
    else:
        lines.append(f"Policies: all {len(policies.POLICIES)} pass (infra/policies.py)")
    if plan.notes:
        lines.append("")
        lines.append("Notes")
        lines.extend(f"  {note}" for note in plan.notes)
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.plan [--json] [--stack NAME] [--root DIR]` (what `dataplatform plan` calls)."""
    parser = argparse.ArgumentParser(prog="dataplatform plan", description=OFFLINE_NOTE)
    parser.add_argument("--json", action="store_true", help="print the whole plan as one JSON object")
    parser.add_argument("--stack", default=None, help="stack name (Pulumi.<stack>.yaml); default: the only one")
    parser.add_argument("--root", default=".", help="repository root (Pulumi.yaml, schemas/, workflows/)")
    args = parser.parse_args(argv)
    try:
        plan = run_plan(args.root, args.stack)
    except PlatformError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(to_json(plan), indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(render_text(plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
