"""`dataplatform plan`: the program under mocks as an offline, complete, reproducible resource tree."""

from __future__ import annotations

import json
import shutil

import pulumi
import pytest

from infra import plan as planner
from dataplatform.definitions.loader import load_catalog
from dataplatform.errors import PlatformError
from infra.config import ConfigError
from infra.plan import render_text, run_plan, to_json
from infra.schedule import ScheduleError

from .conftest import REPO_ROOT

SECRET_KEYS = '["k-0123456789abcdef-first", "k-0123456789abcdef-second"]'


def urns(plan_json: dict) -> set[str]:
    out = set()
    for component in plan_json["components"]:
        if component["urn"]:
            out.add(component["urn"])
        out.update(r["urn"] for r in component["resources"])
    return out


def test_plan_json_lists_every_resource_the_program_registers(stack, capsys):
    """The engine's own record (the mock monitor) against `plan --json` of the same program."""

    @pulumi.runtime.test
    def program():
        return stack.compose().platform.urn

    program()
    registered = set(stack.monitor.registrations)
    assert len(registered) > 200
    assert planner.main(["--json", "--root", str(REPO_ROOT), "--stack", "dev"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert urns(listed) == registered
    assert listed["totals"]["resources"] == sum(1 for r in stack.monitor.registrations.values() if r.custom)
    assert listed["kind"] == "offline-intent" and "not a diff" in listed["note"]


def test_text_plan_is_grouped_by_component_and_labelled_offline(example_plan, example_catalog):
    text = render_text(example_plan)
    assert text.splitlines()[1].startswith("OFFLINE INTENT") and "not a diff" in text
    assert "Platform platform  [" in text
    for schema in example_catalog.schemas:
        assert f"EventPipeline {schema.key}  [" in text
    for endpoint in example_catalog.endpoints:
        assert f"DataEndpoint {endpoint.name}  [" in text
    assert f"  resources: {example_plan.totals()['resources']} " in text
    assert "Policies: all 6 pass" in text
    assert "collectorApiKeys is encrypted or not set" in text


def test_components_have_their_resources_and_register_outputs(example_plan, example_catalog):
    groups = example_plan.by_component()
    assert set(groups) == {"Platform platform"} | {f"EventPipeline {s.key}" for s in example_catalog.schemas} | {
        f"DataEndpoint {e.name}" for e in example_catalog.endpoints
    }
    assert "" not in groups  # nothing outside a component
    for component in example_plan.components:
        assert component.outputs, f"{component.name} registered no outputs"
    pipeline = next(c for c in example_plan.components if c.name == "track_played_v1")
    assert pipeline.outputs["raw_topic"] == "projects/acme-dataplatform-dev/topics/track_played_v1-raw"
    assert pipeline.outputs["dead_letter_command"].startswith("gcloud pubsub subscriptions update ")
    assert sorted(example_plan.exports["dead_letter_commands"]) == sorted(s.key for s in example_catalog.schemas)


def test_secrets_never_appear_in_the_plan(scratch_repo):
    stack_yaml = (REPO_ROOT / "Pulumi.dev.yaml").read_text() + f"  dataplatform:collectorApiKeys: '{SECRET_KEYS}'\n"
    root = scratch_repo(stack_yaml)
    plan = run_plan(root, "dev")
    version = next(r for r in plan.cloud_resources if r.type == "gcp:secretmanager/secretVersion:SecretVersion")
    assert version.inputs["secretData"] == "[secret]"
    dumped = json.dumps(to_json(plan)) + render_text(plan)
    assert "0123456789abcdef" not in dumped
    assert not plan.notes  # the key was set, so no placeholder note


def test_encrypted_stack_values_become_placeholders(scratch_repo):
    stack_yaml = (REPO_ROOT / "Pulumi.dev.yaml").read_text() + "  dataplatform:collectorApiKeys:\n    secure: v1:AAAAbm90IHJlYWxseSBlbmNyeXB0ZWQ=\n"
    plan = run_plan(scratch_repo(stack_yaml), "dev")
    assert plan.notes == (
        "dataplatform:collectorApiKeys is encrypted or not set in Pulumi.dev.yaml; the plan uses the placeholder [secret]",
    )
    assert "AAAAbm90" not in json.dumps(to_json(plan))


def test_adding_a_schema_adds_exactly_its_event_pipeline(scratch_repo):
    root = scratch_repo()
    before = run_plan(root, "dev")
    text = (root / "schemas" / "search_performed.yaml").read_text()
    (root / "schemas" / "search_refined.yaml").write_text(text.replace("name: search_performed", "name: search_refined", 1))
    after = run_plan(root, "dev")

    old = {r.urn for r in before.resources}
    new = {r.urn: r for r in after.resources}
    added = set(new) - old
    assert old <= set(new), "adding a schema removed or renamed resources"
    pipeline = {u for u, r in new.items() if r.component == "EventPipeline search_refined_v1"}
    component = {u for u, r in new.items() if not r.custom and r.name == "search_refined_v1"}
    assert len(pipeline) >= 15 and len(component) == 1
    assert added == pipeline | component
    assert after.totals()["resources"] - before.totals()["resources"] == len(pipeline)


def test_sharded_plan_declares_the_same_resources_as_one_process(scratch_repo):
    root = scratch_repo()
    single = run_plan(root, "dev", workers=1)
    sharded = run_plan(root, "dev", workers=2)
    assert [(r.urn, r.inputs, r.outputs) for r in single.resources] == [(r.urn, r.inputs, r.outputs) for r in sharded.resources]
    assert single.exports == sharded.exports


def test_shards_keep_an_endpoint_with_everything_it_reads(example_catalog):
    shards = planner.shards(example_catalog, 3)
    assert len(shards) == 3
    everything = {s.key for s in example_catalog.schemas} | {e.name for e in example_catalog.endpoints}
    assert set().union(*shards) == everything and sum(map(len, shards)) == len(everything)
    together = [s for s in shards if "weekly_top_tracks" in s][0]
    assert {"daily_track_plays", "artist_daily_summary", "track_played_v1", "daily_active_users", "app_session_started_v1"} <= together


def test_the_plan_is_reproducible(scratch_repo):
    root = scratch_repo()
    first, second = to_json(run_plan(root, "dev")), to_json(run_plan(root, "dev"))
    assert first == second


def test_domain_filter_deploys_only_those_domains(scratch_repo):
    stack_yaml = (REPO_ROOT / "Pulumi.dev.yaml").read_text() + "  dataplatform:domains: [playback, ads]\n"
    plan = run_plan(scratch_repo(stack_yaml), "dev")
    components = {c.name for c in plan.components}
    assert components == {
        "platform",
        "track_played_v1",
        "ad_impression_v1",
        "daily_track_plays",
        "artist_daily_summary",
        "weekly_top_tracks",
        "ad_revenue_daily",
    }
    anonymizer_env = [
        r.inputs["serviceConfig"]["environmentVariables"]["DATAPLATFORM_DOMAINS"]
        for r in plan.cloud_resources
        if r.type == "gcp:cloudfunctionsv2/function:Function"
    ]
    assert set(anonymizer_env) == {"playback,ads"}


def test_domain_filter_refuses_an_endpoint_reading_another_domain(scratch_repo):
    stack_yaml = (REPO_ROOT / "Pulumi.dev.yaml").read_text() + "  dataplatform:domains: [growth]\n"
    with pytest.raises(ConfigError) as error:
        run_plan(scratch_repo(stack_yaml), "dev")
    message = str(error.value)
    assert "daily_active_users" in message and "events.track_played_v1_dedup" in message and "'playback'" in message


def test_unknown_domain_suggests_the_closest(scratch_repo):
    stack_yaml = (REPO_ROOT / "Pulumi.dev.yaml").read_text() + "  dataplatform:domains: [playbak]\n"
    with pytest.raises(ConfigError, match=r"unknown domain 'playbak' \(did you mean 'playback'\?\)"):
        run_plan(scratch_repo(stack_yaml), "dev")


def test_a_cron_the_scheduled_query_cannot_express_fails_with_its_file(scratch_repo):
    root = scratch_repo()
    path = root / "workflows" / "playlist_activity.yaml"
    path.write_text(path.read_text().replace('schedule: "0 5 * * *"', 'schedule: "0 5,17 * * *"'))
    with pytest.raises(ScheduleError, match=r"workflows/playlist_activity.yaml: schedule '0 5,17 \* \* \*' cannot be expressed"):
        run_plan(root, "dev")


def test_cli_reports_config_errors_and_exits_1(tmp_path, capsys):
    shutil.copytree(REPO_ROOT / "schemas", tmp_path / "schemas")
    assert planner.main(["--root", str(tmp_path), "--stack", "prod"]) == 1
    assert "no stack config" in capsys.readouterr().err
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  gcp:project: acme-dataplatform-dev\n  gcp:region: europe-west1\n")
    (tmp_path / "functions").symlink_to(REPO_ROOT / "functions", target_is_directory=True)
    (tmp_path / "workflows").mkdir()
    assert planner.main(["--root", str(tmp_path)]) == 1
    assert "dataplatform:alertEmail is not set" in capsys.readouterr().err


def test_an_error_in_a_worker_process_reaches_the_caller(scratch_repo):
    root = scratch_repo()
    path = root / "workflows" / "search_success_rate.yaml"
    path.write_text(path.read_text().replace('schedule: "15 4 * * *"', 'schedule: "15 4,16 * * *"'))
    assert "search_success_rate" not in planner.shards(load_catalog(root), 3)[0]  # planned by a worker process
    for workers in (1, 3):
        with pytest.raises(PlatformError, match=r"workflows/search_success_rate.yaml: schedule '15 4,16 \* \* \*'"):
            run_plan(root, "dev", workers=workers)


@pulumi.runtime.test
def test_fast_create_urn_computes_the_sdks_urn(stack):
    from pulumi.runtime.resource import create_urn

    parent = "urn:pulumi:dev::dataplatform::dataplatform:infra:EventPipeline::track_played_v1"
    cases = [("t-raw", "gcp:pubsub/topic:Topic", parent), ("platform", "dataplatform:infra:Platform", None)]
    expected = pulumi.Output.all(*[create_urn(*case) for case in cases])
    fast = pulumi.Output.all(*[planner.fast_create_urn(*case) for case in cases])

    def check(pair):
        sdk, ours = pair
        assert ours == sdk
        assert ours[0] == "urn:pulumi:dev::dataplatform::dataplatform:infra:EventPipeline$gcp:pubsub/topic:Topic::t-raw"

    return pulumi.Output.all(expected, fast).apply(check)
