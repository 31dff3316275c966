"""`EventPipeline`: everything one event type (at one major version) needs, from raw to table.

    collect ──► <key>-raw ──(Eventarc trigger, retries)──► anonymize ──► <key> (Avro, BINARY)
                     └─ after 5 failed deliveries ──► <key>-dead-letter                │
                                                                   BigQuery subscription
                                                                                      ▼
                                                          events.<key>  (+ <key>_dedup view)

Resources: the Pub/Sub Avro schema compiled from the event schema, the raw, clean and
dead-letter topics, a subscription that holds dead letters (7 days, alerted on), the
`anonymize` function with its event trigger on the raw topic (retry on), the table
(partitioned by `event_time`, clustered, partition expiration = retention,
`require_partition_filter`, deletion protection), the BigQuery subscription writing the
clean topic into it (`use_topic_schema`, `write_metadata`), the dedup view, and IAM:
collect publishes raw, anonymize publishes clean, readers read table and view, the Pub/Sub
service agent writes the table and handles dead letters, dp-trigger invokes anonymize.

Dead letters — what Pulumi manages and what happens at deploy time. The function's event
trigger is an Eventarc trigger, and Eventarc creates and owns the push subscription on the
raw topic; its name is known only once the function is deployed. The dead-letter policy
belongs on that subscription, so:
- Pulumi manages the dead-letter topic, the subscription that keeps dead letters, the
  Pub/Sub service agent's `publisher` on the dead-letter topic, and its `subscriber` on the
  trigger's subscription — whose name Pulumi reads back from the Eventarc trigger
  (`gcp.eventarc.Trigger.get`), so the grant follows the subscription if it is recreated.
- Setting the policy on the Eventarc-owned subscription is a deploy-time step, because
  Pulumi cannot adopt a resource Eventarc manages (it would fight Eventarc on every
  update). The exact, idempotent command is this component's `dead_letter_command` output
  (`pulumi stack output dead_letter_commands` lists all; infra/README.md shows the loop):
  `gcloud pubsub subscriptions update <trigger subscription>
  --dead-letter-topic=<key>-dead-letter --max-delivery-attempts=5`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from dataplatform.compile.avro import avro_schema_json
from dataplatform.compile.bigquery_schema import event_table
from dataplatform.definitions.models import EVENTS_DATASET, EventSchema
from infra import builders as b
from infra import names
from infra.components.platform import PlatformRefs, table_args
from infra.views import dedup_view_sql

TYPE = "dataplatform:infra:EventPipeline"
MAX_DELIVERY_ATTEMPTS = 5
DEAD_LETTER_RETENTION = "604800s"
"""Dead letters hold raw personal data: kept 7 days (Pub/Sub's maximum), then gone."""


@dataclass(frozen=True)
class EventPipelineArgs:
    schema: EventSchema
    platform: PlatformRefs


class EventPipeline(pulumi.ComponentResource):
    """One event type's topics, anonymizer, table and grants (see the module docstring)."""

    def __init__(self, name: str, args: EventPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        schema, platform = args.schema, args.platform
        project, region = platform.config.project, platform.config.region
        key = schema.key
        pubsub_api = platform.api("pubsub")

        def tagged(data: str) -> dict[str, str]:
            return b.labels(schema.owner, schema.domain, data=data, **{"event-type": key})

        # -- topics
        self.avro_schema = gcp.pubsub.Schema(
            f"{key}-schema",
            project=project,
            name=key,
            type="AVRO",
            definition=avro_schema_json(schema),
            opts=b.child(self, pubsub_api),
        )
        self.raw_topic = gcp.pubsub.Topic(
            names.raw_topic(key),
            project=project,
            name=names.raw_topic(key),
            labels=tagged("raw-pii"),
            opts=b.child(self, pubsub_api),
        )
        self.clean_topic = gcp.pubsub.Topic(
            names.clean_topic(key),
            project=project,
            name=names.clean_topic(key),
            schema_settings=gcp.pubsub.TopicSchemaSettingsArgs(schema=self.avro_schema.id, encoding="BINARY"),
            labels=tagged("anonymized"),
            opts=b.child(self),
        )
        self.dead_letter_topic = gcp.pubsub.Topic(
            names.dead_letter_topic(key),
            project=project,
            name=names.dead_letter_topic(key),
            labels=tagged("raw-pii-dead-letter"),
            opts=b.child(self, pubsub_api),
        )
        self.dead_letter_subscription = gcp.pubsub.Subscription(
            names.dead_letter_topic(key),
            project=project,
            name=names.dead_letter_topic(key),
            topic=self.dead_letter_topic.id,
            message_retention_duration=DEAD_LETTER_RETENTION,
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            ack_deadline_seconds=60,
            labels=tagged("raw-pii-dead-letter"),
            opts=b.child(self),
        )
        raw_publisher = gcp.pubsub.TopicIAMMember(
            f"{names.raw_topic(key)}-publisher-collect",
            project=project,
            topic=self.raw_topic.name,
            role=b.PUBSUB_PUBLISHER,
            member=platform.member("collect"),
            opts=b.child(self),
        )
        clean_publisher = gcp.pubsub.TopicIAMMember(
            f"{key}-publisher-anonymize",
            project=project,
            topic=self.clean_topic.name,
            role=b.PUBSUB_PUBLISHER,
            member=platform.member("anonymize"),
            opts=b.child(self),
        )
        gcp.pubsub.TopicIAMMember(
            f"{names.dead_letter_topic(key)}-publisher-pubsub-agent",
            project=project,
            topic=self.dead_letter_topic.name,
            role=b.PUBSUB_PUBLISHER,
            member=platform.pubsub_agent,
            opts=b.child(self),
        )

        # -- the anonymizer, triggered by the raw topic
        self.function = b.gen2_function(
            f"function-anonymize-{key}",
            b.FunctionSpec(
                name=names.function_name("anonymize", key),
                entry_point="anonymize",
                service_account_email=platform.email("anonymize"),
                labels=b.labels(schema.owner, schema.domain, component="anonymize", **{"event-type": key}),
                description=f"Validates and anonymizes {key} events from {names.raw_topic(key)} into {key}.",
                environment={
                    "DATAPLATFORM_EVENT_TYPE": key,
                    "DATAPLATFORM_RAW_TOPIC": names.raw_topic(key),
                    "DATAPLATFORM_CLEAN_TOPIC": names.clean_topic(key),
                },
                timeout_seconds=300,
                event_trigger=gcp.cloudfunctionsv2.FunctionEventTriggerArgs(
                    trigger_region=region,
                    event_type=b.PUBSUB_MESSAGE_PUBLISHED,
                    pubsub_topic=self.raw_topic.id,
                    retry_policy="RETRY_POLICY_RETRY",
                    service_account_email=platform.email("trigger"),
                ),
            ),
            platform.source,
            b.child(self, clean_publisher, raw_publisher),
        )
        b.invoker(f"{key}-anonymize-invoker-trigger", self.function, platform.member("trigger"), platform.source, b.child(self))
        trigger = gcp.eventarc.Trigger.get(
            f"{key}-eventarc-trigger",
            self.function.event_trigger.apply(lambda t: t.trigger),
            opts=b.child(self),
        )
        self.trigger_subscription = trigger.transport.apply(lambda t: t.pubsub.subscription)
        gcp.pubsub.SubscriptionIAMMember(
            f"{key}-trigger-subscription-subscriber-pubsub-agent",
            project=project,
            subscription=self.trigger_subscription,
            role=b.PUBSUB_SUBSCRIBER,
            member=platform.pubsub_agent,
            opts=b.child(self),
        )
        self.dead_letter_command = pulumi.Output.concat(
            "gcloud pubsub subscriptions update ",
            self.trigger_subscription,
            " --dead-letter-topic=",
            self.dead_letter_topic.id,
            f" --max-delivery-attempts={MAX_DELIVERY_ATTEMPTS}",
        )

        # -- the table, its loader and its readers
        spec = event_table(schema)
        self.table = gcp.bigquery.Table(
            spec.ref,
            **{**table_args(spec, project), "dataset_id": platform.datasets[EVENTS_DATASET].dataset_id},
            opts=b.child(self),
        )
        table_writer = gcp.bigquery.IamMember(
            f"{spec.ref}-editor-pubsub-agent",
            project=project,
            dataset_id=self.table.dataset_id,
            table_id=self.table.table_id,
            role=b.BIGQUERY_DATA_EDITOR,
            member=platform.pubsub_agent,
            opts=b.child(self),
        )
        self.bigquery_subscription = gcp.pubsub.Subscription(
            names.bigquery_subscription(key),
            project=project,
            name=names.bigquery_subscription(key),
            topic=self.clean_topic.id,
            bigquery_config=gcp.pubsub.SubscriptionBigqueryConfigArgs(
                table=f"{project}.{spec.dataset}.{spec.table}",
                use_topic_schema=True,
                write_metadata=True,
            ),
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            labels=tagged("anonymized"),
            opts=b.child(self, self.table, table_writer),
        )
        self.dedup_view = gcp.bigquery.Table(
            f"{EVENTS_DATASET}.{schema.dedup_view}",
            project=project,
            dataset_id=self.table.dataset_id,
            table_id=schema.dedup_view,
            description=f"{key} without redeliveries: the first delivery of each event_id (at-least-once delivery).",
            view=gcp.bigquery.TableViewArgs(query=dedup_view_sql(project, EVENTS_DATASET, key), use_legacy_sql=False),
            deletion_protection=False,
            labels=b.labels(schema.owner, schema.domain),
            opts=b.child(self, self.table),
        )
        for reader in schema.readers:
            for target, table_id in ((self.table, key), (self.dedup_view, schema.dedup_view)):
                gcp.bigquery.IamMember(
                    f"{EVENTS_DATASET}.{table_id}-viewer-{names.dns_label(reader, 120)}",
                    project=project,
                    dataset_id=target.dataset_id,
                    table_id=target.table_id,
                    role=b.BIGQUERY_DATA_VIEWER,
                    member=reader,
                    opts=b.child(self),
                )

        self.register_outputs(
            {
                "raw_topic": self.raw_topic.id,
                "clean_topic": self.clean_topic.id,
                "dead_letter_topic": self.dead_letter_topic.id,
                "function": self.function.name,
                "trigger_subscription": self.trigger_subscription,
                "dead_letter_command": self.dead_letter_command,
                "table": f"{project}.{spec.dataset}.{spec.table}",
                "dedup_view": f"{project}.{spec.dataset}.{schema.dedup_view}",
                "avro_schema": self.avro_schema.id,
            }
        )
