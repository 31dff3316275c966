"""Least privilege: every (member, role, resource) the program grants, against an explicit allow-list.

`grants(plan)` reads every IAM member resource of the planned example stack. Each grant
must match an entry of `ALLOWED` for its identity (no service account holds a role it
does not need), each identity must hold what its code needs (the allow-list is not
vacuous), and project-wide grants exist only for roles GCP has no narrower level for.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace

from infra.components.data_endpoint import upstream_tables
from infra.mocks import fake_project_number
from infra.plan import Plan, PlannedResource

from .conftest import PROJECT

NUMBER = fake_project_number(PROJECT)
PUBSUB_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
TRANSFER_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"
KEY = f"projects/{PROJECT}/locations/europe-west1/keyRings/dataplatform/cryptoKeys/platform"
CONFIG_BUCKET = f"{PROJECT}-dataplatform-config"
SOURCE_BUCKET = f"{PROJECT}-dataplatform-functions"
EVENT_KEY = r"[a-z][a-z0-9_]*_v\d+"

TARGET_PROPS = {
    "gcp:pubsub/topicIAMMember:TopicIAMMember": ("topic", ("topic",)),
    "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": ("subscription", ("subscription",)),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": ("key", ("cryptoKeyId",)),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("bucket", ("bucket",)),
    "gcp:secretmanager/secretIamMember:SecretIamMember": ("secret", ("secretId",)),
    "gcp:serviceaccount/iAMMember:IAMMember": ("service_account", ("serviceAccountId",)),
    "gcp:bigquery/iamMember:IamMember": ("table", ("datasetId", "tableId")),
    "gcp:bigquery/datasetIamMember:DatasetIamMember": ("dataset", ("datasetId",)),
    "gcp:projects/iAMMember:IAMMember": ("project", ("project",)),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": ("run_service", ("name",)),
}

CONDITIONED_DATASTORE = ("roles/datastore.user", "project", PROJECT, True)


@dataclass(frozen=True)
class Grant:
    member: str
    role: str
    kind: str
    target: str
    conditioned: bool
    urn: str

    def __str__(self) -> str:
        return f"{self.member} has {self.role} on {self.kind} {self.target}"


def grants(resources: list[PlannedResource]) -> list[Grant]:
    out: list[Grant] = []
    for r in resources:
        if not r.type.endswith(("IAMMember", "IamMember")):
            continue
        assert r.type in TARGET_PROPS, f"unknown IAM resource type {r.type}: teach this test what it grants on"
        kind, props = TARGET_PROPS[r.type]
        target = ".".join(str(r.inputs[p]) for p in props)
        out.append(Grant(r.inputs["member"], r.inputs["role"], kind, target, bool(r.inputs.get("condition")), r.urn))
    return out


def identity(member: str) -> str:
    """`dp-collect`, `dp-q-<endpoint>`, `pubsub-agent`, `transfer-agent`, or `reader`."""
    if member == PUBSUB_AGENT:
        return "pubsub-agent"
    if member == TRANSFER_AGENT:
        return "transfer-agent"
    match = re.fullmatch(rf"serviceAccount:(dp-[a-z0-9-]+)@{PROJECT}\.iam\.gserviceaccount\.com", member)
    if match:
        return "dp-q-*" if match.group(1).startswith("dp-q-") else match.group(1)
    return "reader"


ALLOWED: dict[str, list[tuple[str, str, str, bool]]] = {
    # identity: (role, resource kind, target pattern, needs an IAM condition)
    "dp-collect": [
        ("roles/pubsub.publisher", "topic", rf"{EVENT_KEY}-raw|failed-events", False),
        ("roles/cloudkms.cryptoKeyDecrypter", "key", re.escape(KEY), False),
        ("roles/storage.objectViewer", "bucket", re.escape(CONFIG_BUCKET), False),
        ("roles/secretmanager.secretAccessor", "secret", "collector-api-keys", False),
    ],
    "dp-anonymize": [
        ("roles/pubsub.publisher", "topic", rf"{EVENT_KEY}|failed-events", False),
        ("roles/cloudkms.cryptoKeyDecrypter", "key", re.escape(KEY), False),
        ("roles/storage.objectViewer", "bucket", re.escape(CONFIG_BUCKET), False),
        ("roles/datastore.user", "project", PROJECT, True),
    ],
    "dp-forget": [
        ("roles/cloudkms.cryptoKeyDecrypter", "key", re.escape(KEY), False),
        ("roles/storage.objectViewer", "bucket", re.escape(CONFIG_BUCKET), False),
        ("roles/datastore.user", "project", PROJECT, True),
    ],
    "dp-monitor": [
        ("roles/bigquery.jobUser", "project", PROJECT, False),
        ("roles/bigquery.dataViewer", "dataset", "events|endpoints", False),
        ("roles/bigquery.dataEditor", "dataset", "platform", False),
    ],
    "dp-trigger": [("roles/run.invoker", "run_service", r"dp-anonymize-[a-z0-9-]+", False)],
    "dp-scheduler": [("roles/run.invoker", "run_service", "dp-monitor", False)],
    "dp-gateway": [("roles/run.invoker", "run_service", "dp-collect", False)],
    "dp-build": [
        ("roles/logging.logWriter", "project", PROJECT, False),
        ("roles/artifactregistry.writer", "project", PROJECT, False),
        ("roles/storage.objectViewer", "bucket", re.escape(SOURCE_BUCKET), False),
    ],
    "dp-q-*": [
        ("roles/bigquery.jobUser", "project", PROJECT, False),
        ("roles/bigquery.dataViewer", "table", rf"events\.{EVENT_KEY}(_dedup)?|endpoints\.[a-z0-9_]+|platform\.partitions", False),
        ("roles/bigquery.dataEditor", "table", r"endpoints\.[a-z0-9_]+", False),
    ],
    "pubsub-agent": [
        ("roles/bigquery.dataEditor", "table", rf"events\.{EVENT_KEY}|platform\.failed_events", False),
        ("roles/pubsub.publisher", "topic", rf"{EVENT_KEY}-dead-letter", False),
        ("roles/pubsub.subscriber", "subscription", rf"projects/{PROJECT}/subscriptions/eventarc-.+", False),
        (
            "roles/iam.serviceAccountTokenCreator",
            "service_account",
            rf"projects/{PROJECT}/serviceAccounts/dp-(trigger|scheduler)@{PROJECT}\.iam\.gserviceaccount\.com",
            False,
        ),
    ],
    "transfer-agent": [
        ("roles/pubsub.publisher", "topic", "transfer-runs", False),
        (
            "roles/iam.serviceAccountTokenCreator",
            "service_account",
            rf"projects/{PROJECT}/serviceAccounts/dp-q-[a-z0-9-]+@{PROJECT}\.iam\.gserviceaccount\.com",
            False,
        ),
    ],
    "reader": [("roles/bigquery.dataViewer", "table", r"(events|endpoints)\.[a-z0-9_]+", False)],
}

PROJECT_LEVEL_ROLES = {"roles/datastore.user", "roles/bigquery.jobUser", "roles/logging.logWriter", "roles/artifactregistry.writer"}
"""Roles granted project-wide because GCP has no narrower level (datastore.user is narrowed by an IAM condition)."""


def unexpected(all_grants: list[Grant]) -> list[str]:
    problems = []
    for grant in all_grants:
        allowed = ALLOWED.get(identity(grant.member), [])
        if not any(
            grant.role == role and grant.kind == kind and re.fullmatch(pattern, grant.target) and grant.conditioned == conditioned
            for role, kind, pattern, conditioned in allowed
        ):
            problems.append(str(grant))
    return problems


def by_member_role(all_grants: list[Grant]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for g in all_grants:
        out[(identity(g.member) if identity(g.member) != "dp-q-*" else g.member, g.role)].add(g.target)
    return out


def test_no_identity_holds_a_role_it_does_not_need(example_plan: Plan):
    found = grants(example_plan.cloud_resources)
    assert len(found) > 50
    assert unexpected(found) == []


def test_the_check_catches_a_role_nobody_needs(example_plan: Plan):
    resource = next(r for r in example_plan.cloud_resources if r.type == "gcp:projects/iAMMember:IAMMember")
    for role, member in (
        ("roles/editor", f"serviceAccount:dp-collect@{PROJECT}.iam.gserviceaccount.com"),
        ("roles/pubsub.subscriber", f"serviceAccount:dp-anonymize@{PROJECT}.iam.gserviceaccount.com"),
        ("roles/bigquery.jobUser", f"serviceAccount:dp-anonymize@{PROJECT}.iam.gserviceaccount.com"),
    ):
        crafted = replace(resource, inputs={**resource.inputs, "role": role, "member": member, "condition": None})
        assert len(unexpected(grants([crafted]))) == 1, role
    topic_grant = next(r for r in example_plan.cloud_resources if r.type == "gcp:pubsub/topicIAMMember:TopicIAMMember" and "collect" in r.inputs["member"])
    other_topic = replace(topic_grant, inputs={**topic_grant.inputs, "topic": "track_played_v1"})  # a clean topic
    assert unexpected(grants([other_topic])) == [str(grants([other_topic])[0])]


def test_identities_hold_exactly_what_their_code_needs(example_plan: Plan, example_catalog):
    held = by_member_role(grants(example_plan.cloud_resources))
    keys = {s.key for s in example_catalog.schemas}
    assert held[("dp-collect", "roles/pubsub.publisher")] == {f"{k}-raw" for k in keys} | {"failed-events"}
    assert held[("dp-anonymize", "roles/pubsub.publisher")] == keys | {"failed-events"}
    assert held[("pubsub-agent", "roles/pubsub.publisher")] == {f"{k}-dead-letter" for k in keys}
    assert held[("pubsub-agent", "roles/bigquery.dataEditor")] == {f"events.{k}" for k in keys} | {"platform.failed_events"}
    assert len(held[("pubsub-agent", "roles/pubsub.subscriber")]) == len(keys)  # one trigger subscription each
    assert len(held[("dp-trigger", "roles/run.invoker")]) == len(keys)
    for kind in ("dp-collect", "dp-anonymize", "dp-forget"):
        assert held[(kind, "roles/cloudkms.cryptoKeyDecrypter")] == {KEY}
        assert held[(kind, "roles/storage.objectViewer")] == {CONFIG_BUCKET}
    assert held[("dp-monitor", "roles/bigquery.dataViewer")] == {"events", "endpoints"}
    for endpoint in example_catalog.endpoints:
        account = f"serviceAccount:dp-q-{endpoint.name.replace('_', '-')}@{PROJECT}.iam.gserviceaccount.com"
        assert held[(account, "roles/bigquery.dataViewer")] == {*upstream_tables(endpoint, example_catalog), "platform.partitions"}
        assert held[(account, "roles/bigquery.dataEditor")] == {endpoint.table_ref}


def test_readers_read_exactly_the_tables_that_list_them(example_plan: Plan, example_catalog):
    readers: dict[str, set[str]] = defaultdict(set)
    for g in grants(example_plan.cloud_resources):
        if identity(g.member) == "reader":
            readers[g.target].add(g.member)
    expected: dict[str, set[str]] = {}
    for schema in example_catalog.schemas:
        expected[schema.table_ref] = set(schema.readers)
        expected[f"events.{schema.dedup_view}"] = set(schema.readers)
    for endpoint in example_catalog.endpoints:
        expected[endpoint.table_ref] = set(endpoint.readers)
    assert dict(readers) == {k: v for k, v in expected.items() if v}


def test_project_wide_grants_only_where_no_resource_level_exists(example_plan: Plan):
    project_grants = [g for g in grants(example_plan.cloud_resources) if g.kind == "project"]
    assert {g.role for g in project_grants} <= PROJECT_LEVEL_ROLES
    datastore = [g for g in project_grants if g.role == "roles/datastore.user"]
    assert datastore and all(g.conditioned for g in datastore)
    condition = next(
        r.inputs["condition"] for r in example_plan.cloud_resources if r.urn == datastore[0].urn
    )
    assert condition["expression"] == f'resource.name == "projects/{PROJECT}/databases/dataplatform-keys"'


def test_no_basic_or_admin_roles_anywhere(example_plan: Plan):
    for g in grants(example_plan.cloud_resources):
        assert g.role not in ("roles/owner", "roles/editor", "roles/viewer"), str(g)
        assert not g.role.endswith(".admin"), str(g)
