"""Stack config: typed values, clear errors naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import ConfigError, StackConfig, read_stack_file


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"Pulumi.{name}.yaml").write_text(text)
    return tmp_path


def test_stack_file_values_secrets_and_placeholders(tmp_path: Path):
    root = write(
        tmp_path,
        "prod",
        "config:\n"
        "  gcp:project: acme-prod\n"
        "  gcp:region: europe-west1\n"
        "  alertEmail: oncall@example.com\n"
        "  dataplatform:domains: [playback, ads]\n"
        "  dataplatform:collectorApiKeys:\n    secure: v1:abc\n",
    )
    stack = read_stack_file(root)
    assert stack.stack == "prod"
    assert stack.values["dataplatform:alertEmail"] == "oncall@example.com"  # project namespace added
    assert stack.values["dataplatform:domains"] == '["playback", "ads"]'
    assert stack.values["dataplatform:collectorApiKeys"] == "[secret]"
    assert stack.secret_keys == ("dataplatform:collectorApiKeys",)
    assert stack.placeholders == ("dataplatform:collectorApiKeys",)


def test_choosing_a_stack(tmp_path: Path):
    write(tmp_path, "dev", "config: {}\n")
    write(tmp_path, "prod", "config: {}\n")
    with pytest.raises(ConfigError, match=r"choose a stack with --stack NAME \(stack files in .*: dev, prod\)"):
        read_stack_file(tmp_path)
    with pytest.raises(ConfigError, match=r"no stack config .*Pulumi.prd.yaml \(did you mean 'prod'\?\)"):
        read_stack_file(tmp_path, "prd")
    write(tmp_path, "bad", "config: [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_stack_file(tmp_path, "bad")
    write(tmp_path, "broken", "config:\n  gcp:project: [\n")
    with pytest.raises(ConfigError, match="Pulumi.broken.yaml: not valid YAML"):
        read_stack_file(tmp_path, "broken")


BASE = dict(stack="dev", project="acme-dev", region="europe-west1", alert_email="a@example.com", collector_api_keys="[secret]")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project": "Acme_Dev"}, "gcp:project 'Acme_Dev' is not a GCP project id"),
        ({"region": "europe"}, "gcp:region 'europe' is not a GCP region"),
        ({"alert_email": "oncall"}, "dataplatform:alertEmail 'oncall' is not an email address"),
        ({"project_number": "12ab"}, "dataplatform:projectNumber '12ab' must be digits"),
        ({"forget_invokers": ("allUsers",)}, "public members are not allowed"),
        ({"partition_expiration_days": 0}, "partitionExpirationDays must be 1 to 3650"),
    ],
)
def test_bad_values_name_the_key(change: dict, message: str):
    with pytest.raises(ConfigError, match="Pulumi.dev.yaml: ") as error:
        StackConfig(**{**BASE, **change})
    assert message in str(error.value)


def test_locations_default_to_the_region():
    config = StackConfig(**BASE)
    assert config.bigquery_location == config.firestore_location == "europe-west1"
    assert StackConfig(**BASE, bigquery_location="EU").bigquery_location == "EU"


def test_domain_selection_follows_relationship_checks_too(example_catalog):
    from dataclasses import replace as swap

    from dataplatform.definitions.models import RelationshipCheck
    from infra.config import select

    config = StackConfig(**{**BASE, "domains": ("search",)})
    assert {e.name for e in select(example_catalog, config).endpoints} == {"search_success_rate"}
    endpoint = example_catalog.endpoint("search_success_rate")
    checked = endpoint.model_copy(
        update={"checks": (*endpoint.checks, RelationshipCheck(type="relationship", column="filter", to="events.track_played_v1", field="track_id"))}
    )
    catalog = swap(example_catalog, endpoints=tuple(checked if e.name == endpoint.name else e for e in example_catalog.endpoints))
    with pytest.raises(ConfigError, match="reads events.track_played_v1 of domain 'playback'"):
        select(catalog, config)
