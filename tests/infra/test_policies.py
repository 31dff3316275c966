"""The policy pack: every policy passes on the program's resources and fails on a crafted bad one.

Policies are exercised by calling their `validate` directly (what the engine does with a
pack), on the engine-form inputs the mocks recorded for the example stack.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pulumi_gcp
import pytest
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy

from infra import policies
from infra.plan import Plan

from .conftest import REPO_ROOT


def checked(plan: Plan) -> list[policies.Checked]:
    return [policies.Checked(r.type, r.name, r.urn, r.inputs, r.protect) for r in plan.cloud_resources]


def policy(name: str):
    return next(p for p in policies.POLICIES if p.name == name)


def violations_of(name: str, resources: list[policies.Checked]) -> list[policies.Violation]:
    return policies.check_resources(resources, [policy(name)])


def first(plan: Plan, type_: str, where=lambda r: True) -> policies.Checked:
    return next(c for c in checked(plan) if c.type == type_ and where(c))


def test_every_policy_passes_on_the_program(example_plan: Plan):
    assert policies.check_resources(checked(example_plan)) == []
    assert example_plan.violations == ()
    assert {p.name for p in policies.POLICIES} == {
        "no-public-iam-members",
        "tables-have-partition-expiration",
        "kms-keys-rotate",
        "buckets-uniform-access",
        "resources-have-owner-labels",
        "raw-pii-topics-have-anonymizer",
    }


@pytest.mark.parametrize("public", ["allUsers", "allAuthenticatedUsers"])
def test_public_iam_member_fails(example_plan: Plan, public: str):
    grant = first(example_plan, "gcp:bigquery/iamMember:IamMember")
    bad = replace(grant, props={**grant.props, "member": public})
    found = violations_of("no-public-iam-members", [bad])
    assert len(found) == 1 and public in found[0].message and found[0].urn == grant.urn


def test_public_members_in_bindings_policies_and_dataset_access_fail():
    binding = policies.Checked("gcp:pubsub/topicIAMBinding:TopicIAMBinding", "b", "urn:b", {"role": "r", "members": ["group:a@b.c", "allUsers"]})
    policy_data = policies.Checked(
        "gcp:storage/bucketIAMPolicy:BucketIAMPolicy",
        "p",
        "urn:p",
        {"policyData": json.dumps({"bindings": [{"role": "roles/storage.objectViewer", "members": ["allAuthenticatedUsers"]}]})},
    )
    dataset = policies.Checked(
        "gcp:bigquery/dataset:Dataset", "d", "urn:d", {"accesses": [{"role": "READER", "specialGroup": "allAuthenticatedUsers"}]}
    )
    found = violations_of("no-public-iam-members", [binding, policy_data, dataset])
    assert [v.urn for v in found] == ["urn:b", "urn:p", "urn:d"]


def test_table_without_partition_expiration_fails(example_plan: Plan):
    table = first(example_plan, "gcp:bigquery/table:Table", lambda c: not c.props.get("view"))
    no_expiry = replace(table, props={**table.props, "timePartitioning": {"type": "DAY", "field": "event_time"}})
    unpartitioned = replace(table, props={k: v for k, v in table.props.items() if k != "timePartitioning"})
    found = violations_of("tables-have-partition-expiration", [no_expiry, unpartitioned])
    assert len(found) == 2
    assert "no partition expiration" in found[0].message and "not time-partitioned" in found[1].message


def test_views_need_no_partition_expiration(example_plan: Plan):
    view = first(example_plan, "gcp:bigquery/table:Table", lambda c: bool(c.props.get("view")))
    assert "timePartitioning" not in view.props
    assert violations_of("tables-have-partition-expiration", [view]) == []


@pytest.mark.parametrize("rotation", [None, "31536000s", "7776001s"])
def test_kms_key_that_does_not_rotate_in_90_days_fails(example_plan: Plan, rotation):
    key = first(example_plan, "gcp:kms/cryptoKey:CryptoKey")
    props = {k: v for k, v in key.props.items() if k != "rotationPeriod"}
    if rotation:
        props["rotationPeriod"] = rotation
    found = violations_of("kms-keys-rotate", [replace(key, props=props)])
    assert len(found) == 1 and "rotat" in found[0].message


def test_bucket_without_uniform_access_fails(example_plan: Plan):
    bucket = first(example_plan, "gcp:storage/bucket:Bucket")
    for props in ({**bucket.props, "uniformBucketLevelAccess": False}, {k: v for k, v in bucket.props.items() if k != "uniformBucketLevelAccess"}):
        found = violations_of("buckets-uniform-access", [replace(bucket, props=props)])
        assert len(found) == 1 and "uniform bucket-level access" in found[0].message


@pytest.mark.parametrize(
    "type_", ["gcp:pubsub/topic:Topic", "gcp:bigquery/table:Table", "gcp:cloudfunctionsv2/function:Function", "gcp:monitoring/alertPolicy:AlertPolicy"]
)
def test_resource_without_owner_label_fails(example_plan: Plan, type_: str):
    resource = first(example_plan, type_)
    key = policies.LABELLED_TYPES[type_]
    assert resource.props[key]["owner"]
    bad = replace(resource, props={**resource.props, key: {k: v for k, v in resource.props[key].items() if k != "owner"}})
    found = violations_of("resources-have-owner-labels", [bad])
    assert len(found) == 1 and "owner label" in found[0].message


def test_raw_topic_without_an_anonymizer_fails(example_plan: Plan):
    everything = checked(example_plan)
    raw = "track_played_v1-raw"
    without = [c for c in everything if not (c.type == policies.FUNCTION and c.props.get("eventTrigger", {}).get("pubsubTopic", "").endswith(f"/{raw}"))]
    found = violations_of("raw-pii-topics-have-anonymizer", without)
    assert len(found) == 1 and raw in found[0].message
    assert found[0].urn == next(c.urn for c in everything if c.type == policies.TOPIC and c.props["name"] == raw)


def test_topic_labelled_raw_pii_counts_even_without_the_raw_suffix():
    topic = policies.Checked(policies.TOPIC, "t", "urn:t", {"name": "clicks", "labels": {"owner": "x", "data": "raw-pii"}})
    other_anonymizer = policies.Checked(
        policies.FUNCTION,
        "f",
        "urn:f",
        {"buildConfig": {"entryPoint": "collect"}, "eventTrigger": {"pubsubTopic": "projects/p/topics/clicks"}},
    )
    assert len(violations_of("raw-pii-topics-have-anonymizer", [topic, other_anonymizer])) == 1
    anonymizer = replace(other_anonymizer, props={**other_anonymizer.props, "buildConfig": {"entryPoint": "anonymize"}})
    assert violations_of("raw-pii-topics-have-anonymizer", [topic, anonymizer]) == []


def test_dead_letter_topics_hold_raw_data_without_an_anonymizer_by_design(example_plan: Plan):
    dead_letters = [c for c in checked(example_plan) if c.type == policies.TOPIC and c.props["labels"]["data"] == "raw-pii-dead-letter"]
    assert dead_letters and violations_of("raw-pii-topics-have-anonymizer", dead_letters) == []


def test_owner_label_table_covers_every_labellable_type_the_program_declares(example_plan: Plan):
    """A type that can carry labels but is missing from LABELLED_TYPES would escape the owner policy."""
    for type_ in sorted({r.type for r in example_plan.cloud_resources if not r.read}):
        module, name = type_.split(":")[1].split("/")[0], type_.rsplit(":", 1)[1]
        cls = getattr(getattr(pulumi_gcp, module), name)
        accepts = {p for p in cls._internal_init.__code__.co_varnames if p in ("labels", "user_labels")}
        if type_ in policies.LABELLED_TYPES:
            expected = "userLabels" if "user_labels" in accepts else "labels"
            assert policies.LABELLED_TYPES[type_] == expected, type_
        else:
            assert not accepts, f"{type_} takes labels; add it to infra.policies.LABELLED_TYPES"


def test_the_policies_form_a_pack(monkeypatch):
    """`policy_pack/__main__.py` builds a PolicyPack of exactly POLICIES (run without the engine)."""
    created = []

    class Recording(PolicyPack):
        def __init__(self, name, policies, enforcement_level=None, **kwargs):  # noqa: A002
            created.append((name, policies, enforcement_level))

    monkeypatch.setattr("pulumi_policy.PolicyPack", Recording)
    path = Path(REPO_ROOT / "infra" / "policy_pack" / "__main__.py")
    spec = importlib.util.spec_from_file_location("policy_pack_main", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [(name, pack_policies, level)] = created
    assert name == "dataplatform-guardrails" and pack_policies is policies.POLICIES and level == EnforcementLevel.MANDATORY
    assert all(isinstance(p, ResourceValidationPolicy | StackValidationPolicy) for p in pack_policies)
    assert (REPO_ROOT / "infra" / "policy_pack" / "PulumiPolicy.yaml").read_text().startswith("runtime:")
