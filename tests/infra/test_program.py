"""The Pulumi program on the example catalog, under mocks (`@pulumi.runtime.test`, preview=False).

Each test composes the whole stack inside its own test function and asserts on the
resolved outputs of the components it is about.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pytest

from dataplatform.compile.avro import avro_schema_json
from dataplatform.compile.bigquery_schema import event_table, failed_events_table
from dataplatform.compile.endpoint_schema import endpoint_table
from infra.components.data_endpoint import narrowed_catalog, scheduled_query_sql
from infra.components.platform import ERROR_RATE_THRESHOLD, FRESHNESS_METRIC, KEYS_DATABASE
from infra.schedule import deadline_cron, dts_schedule

from .conftest import PROJECT, REGION, wrap

DAY_MS = 86_400_000


@pulumi.runtime.test
def test_every_anonymizer_is_triggered_by_its_raw_topic_with_retries(stack):
    deployment = stack.compose()
    assert sorted(deployment.pipelines) == sorted(s.key for s in stack.catalog.schemas)

    def check(rows):
        rows = wrap(rows)
        for key, name, trigger, build, service in rows:
            assert trigger.pubsub_topic == f"projects/{PROJECT}/topics/{key}-raw"
            assert trigger.event_type == "google.cloud.pubsub.topic.v1.messagePublished"
            assert trigger.retry_policy == "RETRY_POLICY_RETRY"
            assert trigger.trigger_region == REGION
            assert trigger.service_account_email == f"dp-trigger@{PROJECT}.iam.gserviceaccount.com"
            assert build.entry_point == "anonymize" and build.runtime == "python312"
            assert build.source.storage_source.object == stack.archive.object_name
            assert service.service_account_email == f"dp-anonymize@{PROJECT}.iam.gserviceaccount.com"
            assert service.environment_variables["DATAPLATFORM_EVENT_TYPE"] == key
            assert name.startswith("dp-anonymize-") and len(name) <= 49

    return pulumi.Output.all(
        *[
            pulumi.Output.all(key, p.function.name, p.function.event_trigger, p.function.build_config, p.function.service_config)
            for key, p in deployment.pipelines.items()
        ]
    ).apply(check)


@pulumi.runtime.test
def test_event_tables_expire_partitions_after_the_retention(stack):
    deployment = stack.compose()
    schemas = {s.key: s for s in stack.catalog.schemas}

    def check(rows):
        rows = wrap(rows)
        for key, partitioning, clustering, required, protected, labels, schema_json in rows:
            schema = schemas[key]
            spec = event_table(schema)
            assert partitioning.expiration_ms == schema.retention_days * DAY_MS
            assert partitioning.field == "event_time"
            assert partitioning.type == schema.partitioning
            assert clustering == list(spec.clustering)
            assert required is True and protected is True
            assert labels["owner"] == schema.owner and labels["domain"] == schema.domain
            assert json.loads(schema_json) == spec.schema_api()

    table = lambda p: pulumi.Output.all(  # noqa: E731
        p.table.table_id,
        p.table.time_partitioning,
        p.table.clusterings,
        p.table.require_partition_filter,
        p.table.deletion_protection,
        p.table.labels,
        p.table.schema,
    )
    return pulumi.Output.all(*[table(p) for p in deployment.pipelines.values()]).apply(check)


@pulumi.runtime.test
def test_clean_topics_carry_the_avro_schema_and_feed_bigquery(stack):
    deployment = stack.compose()
    schemas = {s.key: s for s in stack.catalog.schemas}

    def check(rows):
        rows = wrap(rows)
        for key, settings, schema_id, definition, avro_type, bigquery, subscription_topic in rows:
            assert settings.encoding == "BINARY" and settings.schema == schema_id
            assert avro_type == "AVRO" and definition == avro_schema_json(schemas[key])
            assert bigquery.table == f"{PROJECT}.events.{key}"
            assert bigquery.use_topic_schema is True and bigquery.write_metadata is True
            assert subscription_topic == f"projects/{PROJECT}/topics/{key}"

    return pulumi.Output.all(
        *[
            pulumi.Output.all(
                key,
                p.clean_topic.schema_settings,
                p.avro_schema.id,
                p.avro_schema.definition,
                p.avro_schema.type,
                p.bigquery_subscription.bigquery_config,
                p.bigquery_subscription.topic,
            )
            for key, p in deployment.pipelines.items()
        ]
    ).apply(check)


@pulumi.runtime.test
def test_dead_letters_are_held_and_the_deploy_step_is_exact(stack):
    deployment = stack.compose()

    def check(rows):
        rows = wrap(rows)
        for key, retention, dlq_topic, trigger_subscription, command in rows:
            assert retention == "604800s"
            assert dlq_topic == f"projects/{PROJECT}/topics/{key}-dead-letter"
            assert trigger_subscription.startswith(f"projects/{PROJECT}/subscriptions/eventarc-{REGION}-")
            assert command == (
                f"gcloud pubsub subscriptions update {trigger_subscription} "
                f"--dead-letter-topic={dlq_topic} --max-delivery-attempts=5"
            )

    return pulumi.Output.all(
        *[
            pulumi.Output.all(
                key,
                p.dead_letter_subscription.message_retention_duration,
                p.dead_letter_topic.id,
                p.trigger_subscription,
                p.dead_letter_command,
            )
            for key, p in deployment.pipelines.items()
        ]
    ).apply(check)


@pulumi.runtime.test
def test_kms_key_rotates_every_90_days_and_is_protected(stack):
    platform = stack.compose().platform

    def check(args):
        args = wrap(args)
        rotation, purpose, key_id = args
        assert rotation == "7776000s" and purpose == "ENCRYPT_DECRYPT"
        assert key_id == f"projects/{PROJECT}/locations/{REGION}/keyRings/dataplatform/cryptoKeys/platform"
        key = next(r for r in stack.monitor.registrations.values() if r.type == "gcp:kms/cryptoKey:CryptoKey")
        assert key.protect is True

    return pulumi.Output.all(platform.crypto_key.rotation_period, platform.crypto_key.purpose, platform.crypto_key.id).apply(check)


@pulumi.runtime.test
def test_key_store_database_has_no_point_in_time_recovery_and_cannot_be_deleted(stack):
    platform = stack.compose().platform

    def check(args):
        args = wrap(args)
        name, pitr, protection, kind = args
        assert name == KEYS_DATABASE
        assert pitr == "POINT_IN_TIME_RECOVERY_DISABLED"
        assert protection == "DELETE_PROTECTION_ENABLED"
        assert kind == "FIRESTORE_NATIVE"

    db = platform.keys_database
    return pulumi.Output.all(db.name, db.point_in_time_recovery_enablement, db.delete_protection_state, db.type).apply(check)


@pulumi.runtime.test
def test_function_source_is_the_content_hashed_archive(stack):
    platform = stack.compose().platform

    def check(args):
        args = wrap(args)
        name, uniform, prevention, rules, functions = args
        assert name == stack.archive.object_name
        assert name.startswith("functions-") and len(name) == len("functions-") + 16 + len(".zip")
        assert uniform is True and prevention == "enforced"
        assert rules[0].action.type == "Delete" and rules[0].condition.age == 30
        for build in functions:
            assert build.source.storage_source.object == name
            assert build.runtime == "python312"

    return pulumi.Output.all(
        platform.archive.name,
        platform.source_bucket.uniform_bucket_level_access,
        platform.source_bucket.public_access_prevention,
        platform.source_bucket.lifecycle_rules,
        pulumi.Output.all(platform.collect.build_config, platform.forget.build_config, platform.monitor.build_config),
    ).apply(check)


@pulumi.runtime.test
def test_platform_functions_entry_points_and_identities(stack):
    platform = stack.compose().platform

    def check(rows):
        rows = wrap(rows)
        for kind, build, service in rows:
            assert build.entry_point == kind
            assert service.service_account_email == f"dp-{kind}@{PROJECT}.iam.gserviceaccount.com"
        collect_service = rows[0][2]
        secret = collect_service.secret_environment_variables[0]
        assert secret.key == "DATAPLATFORM_COLLECT_API_KEYS" and secret.secret == "collector-api-keys"
        assert "DATAPLATFORM_COLLECT_API_KEYS" not in collect_service.environment_variables

    return pulumi.Output.all(
        *[
            pulumi.Output.all(kind, fn.build_config, fn.service_config)
            for kind, fn in (("collect", platform.collect), ("forget", platform.forget), ("monitor", platform.monitor))
        ]
    ).apply(check)


@pulumi.runtime.test
def test_failed_events_topic_loads_into_the_failed_events_table(stack):
    platform = stack.compose().platform
    spec = failed_events_table()

    def check(args):
        args = wrap(args)
        topic, bigquery, table_id, partitioning = args
        assert topic == f"projects/{PROJECT}/topics/failed-events"
        assert bigquery.table == f"{PROJECT}.platform.failed_events"
        assert bigquery.use_table_schema is True and bigquery.write_metadata is True
        assert table_id == "failed_events"
        assert partitioning.expiration_ms == spec.expiration_days * DAY_MS

    return pulumi.Output.all(
        platform.failed_events_subscription.topic,
        platform.failed_events_subscription.bigquery_config,
        platform.failed_events_table.table_id,
        platform.failed_events_table.time_partitioning,
    ).apply(check)


@pulumi.runtime.test
def test_datasets_have_a_default_partition_expiration(stack):
    platform = stack.compose().platform

    def check(rows):
        rows = wrap(rows)
        got = dict(rows)
        assert set(got) == {"events", "endpoints", "platform"}
        assert got["events"] == got["endpoints"] == 90 * DAY_MS
        assert got["platform"] == 400 * DAY_MS

    return pulumi.Output.all(
        *[pulumi.Output.all(d.dataset_id, d.default_partition_expiration_ms) for d in platform.datasets.values()]
    ).apply(check)


@pulumi.runtime.test
def test_scheduled_queries_write_the_run_date_partition(stack):
    deployment = stack.compose()
    endpoints = {e.name: e for e in stack.catalog.endpoints}
    assert sorted(deployment.endpoints) == sorted(endpoints)

    def check(rows):
        rows = wrap(rows)
        for name, source, schedule, params, account, topic, dataset, email in rows:
            endpoint = endpoints[name]
            assert source == "scheduled_query"
            assert schedule == dts_schedule(endpoint.schedule)
            # a BigQuery script (readiness check, then the partition replace): no DTS destination
            assert params == {"query": scheduled_query_sql(endpoint, stack.catalog)}
            assert "RAISE" in params["query"] and f"endpoints.{name}" in params["query"]
            assert account.startswith("dp-q-") and account.endswith(f"@{PROJECT}.iam.gserviceaccount.com")
            assert topic == f"projects/{PROJECT}/topics/transfer-runs"
            assert dataset == "endpoints"
            assert email.enable_failure_email is False

    return pulumi.Output.all(
        *[
            pulumi.Output.all(
                name,
                d.transfer_config.data_source_id,
                d.transfer_config.schedule,
                d.transfer_config.params,
                d.transfer_config.service_account_name,
                d.transfer_config.notification_pubsub_topic,
                d.transfer_config.destination_dataset_id,
                d.transfer_config.email_preferences,
            )
            for name, d in deployment.endpoints.items()
        ]
    ).apply(check)


@pulumi.runtime.test
def test_endpoint_tables_follow_the_inferred_schema_and_retention(stack):
    deployment = stack.compose()
    endpoints = {e.name: e for e in stack.catalog.endpoints}

    def check(rows):
        rows = wrap(rows)
        for name, schema_json, partitioning in rows:
            endpoint = endpoints[name]
            spec = endpoint_table(endpoint, stack.catalog)
            assert json.loads(schema_json) == spec.schema_api()
            assert partitioning.field == endpoint.partition_field and partitioning.type == "DAY"
            assert partitioning.expiration_ms == endpoint.retention_days * DAY_MS

    return pulumi.Output.all(
        *[pulumi.Output.all(name, d.table.schema, d.table.time_partitioning) for name, d in deployment.endpoints.items()]
    ).apply(check)


def test_narrowed_catalog_types_endpoints_like_the_whole_catalog(example_catalog):
    for endpoint in example_catalog.endpoints:
        assert endpoint_table(endpoint, narrowed_catalog(endpoint, example_catalog)) == endpoint_table(
            endpoint, example_catalog
        )


@pulumi.runtime.test
def test_scheduler_jobs_call_monitor_with_an_oidc_token(stack):
    deployment = stack.compose()
    endpoints = {e.name: e for e in stack.catalog.endpoints}

    def check(rows):
        rows = wrap(rows)
        monitor_url = rows[0][0]
        assert monitor_url.startswith("https://dp-monitor-") and monitor_url.endswith(".a.run.app")
        for _, name, schedule, zone, target in rows:
            endpoint = endpoints[name]
            assert schedule == deadline_cron(endpoint.freshness_deadline)
            assert zone == "Etc/UTC"
            assert target.uri == f"{monitor_url}/check"
            assert target.http_method == "POST"
            assert target.oidc_token.service_account_email == f"dp-scheduler@{PROJECT}.iam.gserviceaccount.com"
            assert target.oidc_token.audience == monitor_url
            assert json.loads(base64.b64decode(target.body)) == {"endpoint": name, "checks": ["freshness", "quality"]}

    monitor_url = deployment.platform.refs.monitor_url
    return pulumi.Output.all(
        *[
            pulumi.Output.all(monitor_url, name, d.monitor_job.schedule, d.monitor_job.time_zone, d.monitor_job.http_target)
            for name, d in deployment.endpoints.items()
        ]
    ).apply(check)


@pulumi.runtime.test
def test_alert_policies_watch_errors_dead_letters_and_freshness(stack):
    platform = stack.compose().platform

    def check(rows):
        rows = wrap(rows)
        by_name = {name: (conditions, channels) for name, conditions, channels in rows}
        assert set(by_name) == {
            "dataplatform: function error rate",
            "dataplatform: dead-letter backlog",
            "dataplatform: freshness deadline missed",
        }
        errors = by_name["dataplatform: function error rate"][0][0].condition_threshold
        assert 'metric.type="run.googleapis.com/request_count"' in errors.filter
        assert 'metric.labels.response_code_class="5xx"' in errors.filter
        assert 'resource.labels.service_name=starts_with("dp-")' in errors.filter
        assert "5xx" not in errors.denominator_filter
        assert errors.threshold_value == ERROR_RATE_THRESHOLD and errors.comparison == "COMPARISON_GT"
        backlog = by_name["dataplatform: dead-letter backlog"][0][0].condition_threshold
        assert 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"' in backlog.filter
        assert 'resource.labels.subscription_id=ends_with("-dead-letter")' in backlog.filter
        assert backlog.threshold_value == 0
        freshness = by_name["dataplatform: freshness deadline missed"][0][0].condition_threshold
        assert f'metric.type="logging.googleapis.com/user/{FRESHNESS_METRIC}"' in freshness.filter
        channel = rows[0][2]
        assert all(channels == channel for _, channels in by_name.values())

    return pulumi.Output.all(
        *[pulumi.Output.all(p.display_name, p.conditions, p.notification_channels) for p in platform.alert_policies]
    ).apply(check)


def test_freshness_metric_counts_monitors_structured_log_line(example_plan):
    metric = next(r for r in example_plan.cloud_resources if r.type == "gcp:logging/metric:Metric")
    assert metric.inputs["name"] == FRESHNESS_METRIC
    assert 'jsonPayload.event="freshness_breach"' in metric.inputs["filter"]
    assert 'resource.labels.service_name="dp-monitor"' in metric.inputs["filter"]
    assert metric.inputs["labelExtractors"] == {"table": "EXTRACT(jsonPayload.table)"}
    channel = next(r for r in example_plan.cloud_resources if r.type.endswith("notificationChannel:NotificationChannel"))
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": "data-platform-oncall@example.com"}


def test_dedup_views_read_their_table_and_keep_the_first_delivery(example_plan):
    views = [r for r in example_plan.cloud_resources if r.type == "gcp:bigquery/table:Table" and r.inputs.get("view")]
    assert len(views) == 7
    for view in views:
        table = view.inputs["tableId"].removesuffix("_dedup")
        query = view.inputs["view"]["query"]
        assert f"FROM `{PROJECT}`.`events`.`{table}`" in query
        assert "PARTITION BY event_id, event_time ORDER BY publish_time" in query
        assert view.inputs["view"]["useLegacySql"] is False


@pytest.mark.parametrize("api", ["pubsub", "cloudfunctions", "bigquerydatatransfer", "cloudkms", "firestore", "apigateway"])
def test_the_apis_the_platform_uses_are_enabled_and_never_disabled(example_plan, api):
    services = {r.inputs["service"]: r for r in example_plan.cloud_resources if r.type == "gcp:projects/service:Service"}
    assert services[f"{api}.googleapis.com"].inputs["disableOnDestroy"] is False


def test_the_pulumi_entry_point_composes_the_repository(stack):
    """`infra/__main__.py`, as `pulumi up` runs it, declares the same components as the plan."""
    import runpy

    from .conftest import REPO_ROOT

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(REPO_ROOT / "infra" / "__main__.py"), run_name="__main__")

    program()
    components = sorted((r.type.rsplit(":", 1)[1], r.name) for r in stack.monitor.registrations.values() if not r.custom)
    assert components == sorted(
        [("Platform", "platform")]
        + [("EventPipeline", s.key) for s in stack.catalog.schemas]
        + [("DataEndpoint", e.name) for e in stack.catalog.endpoints]
    )
