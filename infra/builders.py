"""Small builders the components share: labels, IAM role names, child options, gen2 functions.

Kept apart from the components so that every function is built the same way (runtime,
source, build identity, labels) and every IAM grant names its role from one list — the
least-privilege test compares grants against these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.names import label_value

RUNTIME = "python312"
PLATFORM_OWNER = "platform"
PLATFORM_DOMAIN = "platform"

# IAM roles the program grants (resource level unless the name says project).
PUBSUB_PUBLISHER = "roles/pubsub.publisher"
PUBSUB_SUBSCRIBER = "roles/pubsub.subscriber"
KMS_DECRYPTER = "roles/cloudkms.cryptoKeyDecrypter"
DATASTORE_USER = "roles/datastore.user"
BIGQUERY_JOB_USER = "roles/bigquery.jobUser"
BIGQUERY_DATA_VIEWER = "roles/bigquery.dataViewer"
BIGQUERY_DATA_EDITOR = "roles/bigquery.dataEditor"
RUN_INVOKER = "roles/run.invoker"
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
STORAGE_OBJECT_VIEWER = "roles/storage.objectViewer"
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
LOG_WRITER = "roles/logging.logWriter"
ARTIFACT_WRITER = "roles/artifactregistry.writer"

PUBSUB_MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def labels(owner: str, domain: str, **extra: str) -> dict[str, str]:
    """The labels every labelled resource carries: `owner`, `domain` (+ extras)."""
    out = {"owner": label_value(owner), "domain": label_value(domain), "managed-by": "dataplatform"}
    out.update({k: label_value(v) for k, v in extra.items()})
    return out


def platform_labels(**extra: str) -> dict[str, str]:
    return labels(PLATFORM_OWNER, PLATFORM_DOMAIN, **extra)


def child(parent: pulumi.Resource, *depends_on: pulumi.Resource | None, **options) -> pulumi.ResourceOptions:
    """Options of a component's child: parented, plus explicit dependencies."""
    deps = [d for d in depends_on if d is not None]
    return pulumi.ResourceOptions(parent=parent, depends_on=deps or None, **options)


def service_account_member(email: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat("serviceAccount:", email)


@dataclass(frozen=True)
class FunctionSource:
    """Where every function's code comes from and who builds it."""

    project: str
    region: str
    bucket: pulumi.Input[str]
    object: pulumi.Input[str]
    build_service_account: pulumi.Input[str]
    """Full id `projects/<p>/serviceAccounts/<email>` of the Cloud Build identity."""
    environment: Mapping[str, pulumi.Input[str]]
    """Variables every function gets (project, KMS key, buckets, database, ...)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One gen2 function: what runs, as whom, how it is reached."""

    name: str
    entry_point: str
    service_account_email: pulumi.Input[str]
    labels: Mapping[str, str]
    description: str
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Env var → Secret Manager secret id (latest version)."""
    memory: str = "512Mi"
    timeout_seconds: int = 60
    max_instances: int = 20
    ingress: str = "ALLOW_INTERNAL_ONLY"
    event_trigger: gcp.cloudfunctionsv2.FunctionEventTriggerArgs | None = None


def gen2_function(
    resource_name: str, spec: FunctionSpec, source: FunctionSource, opts: pulumi.ResourceOptions
) -> gcp.cloudfunctionsv2.Function:
    """A Cloud Functions (2nd gen) function on python312 built from the content-hashed archive."""
    secrets: Sequence[gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs] | None = [
        gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs(
            key=key, project_id=source.project, secret=secret, version="latest"
        )
        for key, secret in sorted(spec.secret_environment.items())
    ] or None
    return gcp.cloudfunctionsv2.Function(
        resource_name,
        name=spec.name,
        project=source.project,
        location=source.region,
        description=spec.description,
        labels=dict(spec.labels),
        build_config=gcp.cloudfunctionsv2.FunctionBuildConfigArgs(
            runtime=RUNTIME,
            entry_point=spec.entry_point,
            service_account=source.build_service_account,
            source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceArgs(
                storage_source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceStorageSourceArgs(
                    bucket=source.bucket, object=source.object
                )
            ),
        ),
        service_config=gcp.cloudfunctionsv2.FunctionServiceConfigArgs(
            service_account_email=spec.service_account_email,
            available_memory=spec.memory,
            timeout_seconds=spec.timeout_seconds,
            max_instance_count=spec.max_instances,
            ingress_settings=spec.ingress,
            all_traffic_on_latest_revision=True,
            environment_variables={**source.environment, **spec.environment},
            secret_environment_variables=secrets,
        ),
        event_trigger=spec.event_trigger,
        opts=opts,
    )


def invoker(
    resource_name: str,
    function: gcp.cloudfunctionsv2.Function,
    member: pulumi.Input[str],
    source: FunctionSource,
    opts: pulumi.ResourceOptions,
) -> gcp.cloudrunv2.ServiceIamMember:
    """`run.invoker` on the Cloud Run service behind a gen2 function (same name as the function)."""
    return gcp.cloudrunv2.ServiceIamMember(
        resource_name,
        project=source.project,
        location=source.region,
        name=function.name,
        role=RUN_INVOKER,
        member=member,
        opts=opts,
    )
