"""The platform's guardrails as Pulumi policies (a policy pack in `policy_pack/`).

| policy                              | checks                                                        |
|-------------------------------------|---------------------------------------------------------------|
| `no-public-iam-members`             | no IAM member/binding/dataset access is `allUsers` or `allAuthenticatedUsers` |
| `tables-have-partition-expiration`  | every BigQuery table (views excepted: they hold no data) is time-partitioned with a partition expiration |
| `kms-keys-rotate`                   | every encryption key rotates at least every 90 days           |
| `buckets-uniform-access`            | every bucket uses uniform bucket-level access                 |
| `resources-have-owner-labels`       | every resource that can carry labels has a non-empty `owner` label |
| `raw-pii-topics-have-anonymizer`    | every topic carrying raw personal data (`data: raw-pii` label or a `-raw` name) is the trigger topic of an `anonymize` function |

The first five are `ResourceValidationPolicy`s: each judges one resource's inputs. The
last one relates two resources (a topic and the function triggered by it), which a
resource policy cannot see, so it is a `StackValidationPolicy` over all resources; it sits
in the same `POLICIES` list and pack. Dead-letter topics (`data: raw-pii-dead-letter`)
also hold raw data but by design have no anonymizer: failed batches wait there (7 days at
most) to be fixed and replayed to the raw topic.

Props are the engine's view of a resource: Pulumi property names (`timePartitioning`,
`uniformBucketLevelAccess`), as `infra.mocks` records them and as the engine passes them
to a pack (`pulumi preview --policy-pack infra/policy_pack`). `check_resources` runs every
policy over recorded resources without the engine (tests, `dataplatform plan`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
MAX_ROTATION_SECONDS = 90 * 86400

TABLE = "gcp:bigquery/table:Table"
BUCKET = "gcp:storage/bucket:Bucket"
CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
TOPIC = "gcp:pubsub/topic:Topic"
FUNCTION = "gcp:cloudfunctionsv2/function:Function"

LABELLED_TYPES: Mapping[str, str] = {
    "gcp:pubsub/topic:Topic": "labels",
    "gcp:pubsub/subscription:Subscription": "labels",
    "gcp:kms/cryptoKey:CryptoKey": "labels",
    "gcp:storage/bucket:Bucket": "labels",
    "gcp:cloudfunctionsv2/function:Function": "labels",
    "gcp:bigquery/dataset:Dataset": "labels",
    "gcp:bigquery/table:Table": "labels",
    "gcp:secretmanager/secret:Secret": "labels",
    "gcp:apigateway/api:Api": "labels",
    "gcp:apigateway/apiConfig:ApiConfig": "labels",
    "gcp:apigateway/gateway:Gateway": "labels",
    "gcp:monitoring/notificationChannel:NotificationChannel": "userLabels",
    "gcp:monitoring/alertPolicy:AlertPolicy": "userLabels",
    "gcp:cloudrunv2/service:Service": "labels",
    "gcp:cloudfunctions/function:Function": "labels",
}
"""Resource type → the property holding its resource labels.

Every labellable type the program declares is listed (a test checks this against the
pulumi-gcp classes). Notification channels and alert policies keep resource labels in
`userLabels` (their `labels` are channel settings). Not listed on purpose: types without
labels (IAM members, service accounts, key rings, schemas, bucket objects, scheduler jobs,
log metrics, Firestore databases) and the Eventarc trigger Cloud Functions creates, which
the program only reads.
"""


# --------------------------------------------------------------------------- resource policies


def _no_public_members(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for path, member in _members(args.props):
        if member in PUBLIC_MEMBERS:
            report(f"{args.resource_type} {args.name!r} grants {member} at {path}; public access is not allowed: grant a group or service account")


def _members(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else key
            if key in ("member", "iamMember", "specialGroup") and isinstance(item, str):
                yield here, item
            elif key == "members" and isinstance(item, list):
                yield from ((f"{here}[{i}]", m) for i, m in enumerate(item) if isinstance(m, str))
            elif key == "policyData" and isinstance(item, str):
                yield from _members(_json(item), here)
            else:
                yield from _members(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _members(item, f"{path}[{i}]")


def _tables_expire(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TABLE:
        return
    props = args.props
    if props.get("view") or props.get("materializedView"):
        return
    partitioning = props.get("timePartitioning") or {}
    expiration = partitioning.get("expirationMs")
    if not partitioning:
        report(f"table {_table_name(props)} is not time-partitioned; partition it so its data can expire")
    elif not expiration or float(expiration) <= 0:
        report(f"table {_table_name(props)} has no partition expiration; set timePartitioning.expirationMs to its retention")


def _keys_rotate(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CRYPTO_KEY:
        return
    if args.props.get("purpose", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        return  # asymmetric keys cannot rotate automatically
    period = args.props.get("rotationPeriod")
    seconds = _seconds(period)
    if seconds is None:
        report(f"KMS key {args.props.get('name', args.name)!r} has no rotationPeriod; set it to at most {MAX_ROTATION_SECONDS}s (90 days)")
    elif seconds > MAX_ROTATION_SECONDS:
        report(f"KMS key {args.props.get('name', args.name)!r} rotates every {period}; at most {MAX_ROTATION_SECONDS}s (90 days) is allowed")


def _buckets_uniform(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == BUCKET and args.props.get("uniformBucketLevelAccess") is not True:
        report(f"bucket {args.props.get('name', args.name)!r} does not use uniform bucket-level access; set uniformBucketLevelAccess: true (no per-object ACLs)")


def _owner_labels(args: ResourceValidationArgs, report: ReportViolation) -> None:
    key = LABELLED_TYPES.get(args.resource_type)
    if not key:
        return
    labels = args.props.get(key) or {}
    if not str(labels.get("owner", "")).strip():
        report(f"{args.resource_type} {args.name!r} has no owner label; add {key}.owner (the owning team)")


def _anonymizer_for_raw_topics(args: StackValidationArgs, report: ReportViolation) -> None:
    triggered: set[str] = set()
    for resource in args.resources:
        if resource.resource_type != FUNCTION:
            continue
        build = resource.props.get("buildConfig") or {}
        trigger = resource.props.get("eventTrigger") or {}
        topic = trigger.get("pubsubTopic")
        if build.get("entryPoint") == "anonymize" and isinstance(topic, str):
            triggered.add(topic.rsplit("/topics/", 1)[-1])
    for resource in args.resources:
        if resource.resource_type != TOPIC:
            continue
        name = str(resource.props.get("name") or resource.name)
        data = (resource.props.get("labels") or {}).get("data")
        carries_raw = data == "raw-pii" or (name.endswith("-raw") and data != "raw-pii-dead-letter")
        if carries_raw and name not in triggered:
            report(f"topic {name!r} carries raw personal data but no anonymize function is triggered by it", resource.urn)


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    ResourceValidationPolicy(
        name="no-public-iam-members",
        description="No IAM member, binding or dataset access may be allUsers or allAuthenticatedUsers.",
        validate=_no_public_members,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="tables-have-partition-expiration",
        description="Every BigQuery table is time-partitioned with a partition expiration (its retention).",
        validate=_tables_expire,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="kms-keys-rotate",
        description="Every symmetric KMS key rotates at least every 90 days.",
        validate=_keys_rotate,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="buckets-uniform-access",
        description="Every bucket uses uniform bucket-level access.",
        validate=_buckets_uniform,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="resources-have-owner-labels",
        description="Every resource that can carry labels has an owner label.",
        validate=_owner_labels,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="raw-pii-topics-have-anonymizer",
        description="Every topic carrying raw personal data has an anonymize function subscribed (triggered by it).",
        validate=_anonymizer_for_raw_topics,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]


# --------------------------------------------------------------------------- running without the engine


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.message} ({self.urn})"


@dataclass(frozen=True)
class Checked:
    """A resource as policies see it: type, name, URN and engine-form inputs."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False


def resource_args(resource: Checked) -> ResourceValidationArgs:
    options = PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    return ResourceValidationArgs(resource.type, resource.props, resource.urn, resource.name, options, None)


def stack_args(resources: Iterable[Checked]) -> StackValidationArgs:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return StackValidationArgs(
        [PolicyResource(r.type, r.props, r.urn, r.name, options, None, None, [], {}) for r in resources]
    )


def check_resources(resources: Iterable[Checked], policies: Iterable = POLICIES) -> list[Violation]:
    """Every violation of every policy over `resources` (what the engine would report)."""
    resources = list(resources)
    violations: list[Violation] = []
    for policy in policies:
        if isinstance(policy, StackValidationPolicy):
            def report(message: str, urn: str | None = None, name: str = policy.name) -> None:
                violations.append(Violation(name, urn or "", message))

            policy.validate(stack_args(resources), report)
            continue
        for resource in resources:
            def report(message: str, urn: str | None = None, name: str = policy.name, at: str = resource.urn) -> None:
                violations.append(Violation(name, urn or at, message))

            policy.validate(resource_args(resource), report)
    return violations


def _table_name(props: Mapping[str, Any]) -> str:
    return f"{props.get('datasetId')}.{props.get('tableId')}"


def _seconds(period: Any) -> float | None:
    if not isinstance(period, str) or not period.endswith("s"):
        return None
    try:
        return float(period[:-1])
    except ValueError:
        return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}
