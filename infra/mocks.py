"""Pulumi mocks shared by the infra tests and `dataplatform plan`: GCP without GCP.

`PlatformMocks.new_resource` answers every resource registration the way the provider
would after a create: the inputs echoed back plus the computed outputs the program reads
(ids in GCP's formats, service-account emails, function URLs, the Eventarc trigger and the
subscription it creates, ...). Values are derived from names with a hash, never random, so
two runs of the same program give the same plan. `call` answers the provider functions the
program invokes (`gcp.organizations.get_project`).

`RecordingMonitor` is the mock engine: besides what Pulumi's `MockMonitor` does, it keeps
every registration — type, name, parent URN, custom or component, inputs as the engine sees
them (Pulumi property names, e.g. `timePartitioning.expirationMs`), outputs, protect flag —
and the outputs each component registers. Tests and the plan read that record; policies
validate exactly those inputs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from dataplatform.errors import PlatformError
from infra.names import digest

GET_PROJECT = "gcp:organizations/getProject:getProject"


def fake_project_number(project: str) -> str:
    """A stable 12-digit project number for `project` (GCP's are 12 digits too)."""
    return str(100000000000 + int(digest(project, 12), 16) % 900000000000)


@dataclass
class Registration:
    """One resource as the engine received it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    protect: bool = False
    read: bool = False
    dependencies: tuple[str, ...] = ()
    component_outputs: dict[str, Any] = field(default_factory=dict)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A `MockMonitor` that keeps every registration (in order) for tests and the plan."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        args = pulumi_mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(args)
        response = serialize_now(state)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        with self._lock:
            self.registrations[urn] = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=inputs,
                outputs=state,
                id=id_ or "",
                protect=bool(request.protect),
                dependencies=tuple(request.dependencies),
            )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=response)

    def ReadResource(self, request):  # noqa: N802
        _ensure_event_loop()
        state = rpc.deserialize_properties(request.properties)
        args = pulumi_mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=state, provider=request.provider, resource_id=request.id
        )
        id_, outputs = self.mocks.new_resource(args)
        response = serialize_now(outputs)
        urn = self.make_urn(request.parent, request.type, request.name)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, outputs)
        with self._lock:
            self.registrations[urn] = Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=True,
                inputs={"id": request.id},
                outputs=outputs,
                id=id_ or request.id,
                read=True,
                dependencies=tuple(request.dependencies),
            )
        return resource_pb2.ReadResourceResponse(urn=urn, properties=response)

    def Invoke(self, request):  # noqa: N802
        _ensure_event_loop()
        args = rpc.deserialize_properties(request.args)
        result = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        return resource_pb2.ResourceInvokeResponse(failures=None, **{"return": serialize_now(result)})

    def RegisterResourceOutputs(self, request):  # noqa: N802
        _ensure_event_loop()
        outputs = rpc.deserialize_properties(request.outputs)
        with self._lock:
            registration = self.registrations.get(request.urn)
            if registration is not None:
                registration.component_outputs = outputs
        return super().RegisterResourceOutputs(request)


def serialize_now(values: dict[str, Any]) -> Any:
    """`rpc.serialize_properties` of plain values, run to completion without an event loop.

    The mock state is plain data (strings, numbers, lists, dicts), so the coroutine never
    has to wait and one `send` finishes it, without the SDK's nested event loop per worker
    thread; anything that does wait (an Output, a resource reference) is serialized the
    SDK's way instead.
    """
    coroutine = rpc.serialize_properties(values, {})
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    return _sync_await(rpc.serialize_properties(values, {}))


# --------------------------------------------------------------------------- mocks


class PlatformMocks(pulumi.runtime.Mocks):
    """Realistic computed outputs for the GCP resources the program declares."""

    def __init__(self, project: str, region: str, project_number: str | None = None) -> None:
        self.project = project
        self.region = region
        self.project_number = project_number or fake_project_number(project)
        self._outputs: dict[str, Callable[[str, dict[str, Any], str | None], tuple[str, dict[str, Any]]]] = {
            "gcp:pubsub/topic:Topic": self._topic,
            "gcp:pubsub/subscription:Subscription": self._subscription,
            "gcp:pubsub/schema:Schema": self._schema,
            "gcp:serviceaccount/account:Account": self._service_account,
            "gcp:cloudfunctionsv2/function:Function": self._function,
            "gcp:eventarc/trigger:Trigger": self._eventarc_trigger,
            "gcp:storage/bucket:Bucket": self._bucket,
            "gcp:storage/bucketObject:BucketObject": self._bucket_object,
            "gcp:kms/keyRing:KeyRing": self._key_ring,
            "gcp:kms/cryptoKey:CryptoKey": self._crypto_key,
            "gcp:bigquery/dataset:Dataset": self._dataset,
            "gcp:bigquery/table:Table": self._table,
            "gcp:bigquery/dataTransferConfig:DataTransferConfig": self._transfer_config,
            "gcp:firestore/database:Database": self._firestore,
            "gcp:secretmanager/secret:Secret": self._secret,
            "gcp:secretmanager/secretVersion:SecretVersion": self._secret_version,
            "gcp:monitoring/notificationChannel:NotificationChannel": self._named("notificationChannels"),
            "gcp:monitoring/alertPolicy:AlertPolicy": self._named("alertPolicies"),
            "gcp:logging/metric:Metric": self._log_metric,
            "gcp:cloudscheduler/job:Job": self._scheduler_job,
            "gcp:apigateway/api:Api": self._api,
            "gcp:apigateway/apiConfig:ApiConfig": self._api_config,
            "gcp:apigateway/gateway:Gateway": self._gateway,
            "gcp:projects/service:Service": self._service,
        }

    # -- pulumi.runtime.Mocks

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        make = self._outputs.get(args.typ)
        if make is not None:
            return make(args.name, inputs, args.resource_id)
        if "/" in args.typ and args.typ.endswith(("IAMMember", "IamMember")):
            target = next((str(v) for k, v in inputs.items() if k not in ("role", "member", "condition")), "")
            return f"{target}/{inputs.get('role')}/{inputs.get('member')}", {**inputs, "etag": f"BwY{digest(args.name, 8)}"}
        return f"{args.name}-id", inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == GET_PROJECT:
            project = args.args.get("projectId") or self.project
            return {
                "id": f"projects/{project}",
                "projectId": project,
                "number": self.project_number,
                "name": project,
                "labels": {},
            }
        raise PlatformError(f"the infra mocks do not answer the provider function {args.token}; add it to infra/mocks.py")

    # -- outputs by resource type

    def _p(self, inputs: Mapping[str, Any]) -> str:
        return str(inputs.get("project") or self.project)

    def _topic(self, name, inputs, _id):
        topic = inputs.get("name") or name
        return f"projects/{self._p(inputs)}/topics/{topic}", {**inputs, "name": topic, "project": self._p(inputs)}

    def _subscription(self, name, inputs, _id):
        sub = inputs.get("name") or name
        return f"projects/{self._p(inputs)}/subscriptions/{sub}", {**inputs, "name": sub, "project": self._p(inputs)}

    def _schema(self, name, inputs, _id):
        schema = inputs.get("name") or name
        return f"projects/{self._p(inputs)}/schemas/{schema}", {**inputs, "name": schema, "project": self._p(inputs)}

    def _service_account(self, name, inputs, _id):
        email = f"{inputs['accountId']}@{self._p(inputs)}.iam.gserviceaccount.com"
        full = f"projects/{self._p(inputs)}/serviceAccounts/{email}"
        return full, {
            **inputs,
            "email": email,
            "name": full,
            "member": f"serviceAccount:{email}",
            "uniqueId": str(int(digest(email, 12), 16)),
            "project": self._p(inputs),
        }

    def _function(self, name, inputs, _id):
        fn = inputs.get("name") or name
        location = inputs.get("location") or self.region
        full = f"projects/{self._p(inputs)}/locations/{location}/functions/{fn}"
        service = dict(inputs.get("serviceConfig") or {})
        service.update(
            service=f"projects/{self._p(inputs)}/locations/{location}/services/{fn}",
            uri=f"https://{fn}-{digest(fn, 10)}-{_region_code(location)}.a.run.app",
        )
        outputs = {
            **inputs,
            "name": fn,
            "location": location,
            "project": self._p(inputs),
            "serviceConfig": service,
            "url": f"https://{location}-{self._p(inputs)}.cloudfunctions.net/{fn}",
            "state": "ACTIVE",
            "environment": "GEN_2",
        }
        if inputs.get("eventTrigger"):
            trigger = dict(inputs["eventTrigger"])
            trigger["trigger"] = f"projects/{self._p(inputs)}/locations/{location}/triggers/{fn}-{digest(fn, 3)}"
            outputs["eventTrigger"] = trigger
        return full, outputs

    def _eventarc_trigger(self, name, inputs, resource_id):
        trigger_id = resource_id or f"projects/{self.project}/locations/{self.region}/triggers/{name}"
        parts = trigger_id.split("/")
        location, trigger = parts[3], parts[5]
        return trigger_id, {
            "name": trigger,
            "location": location,
            "project": parts[1],
            "transport": {
                "pubsub": {
                    "subscription": f"projects/{parts[1]}/subscriptions/eventarc-{location}-{trigger}-sub-{digest(trigger, 3)}",
                    "topic": "",
                }
            },
        }

    def _bucket(self, name, inputs, _id):
        bucket = inputs.get("name") or name
        return bucket, {**inputs, "name": bucket, "url": f"gs://{bucket}", "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}"}

    def _bucket_object(self, name, inputs, _id):
        obj = inputs.get("name") or name
        bucket = inputs.get("bucket")
        return f"{bucket}-{obj}", {
            **inputs,
            "name": obj,
            "generation": int(digest(f"{bucket}/{obj}", 12), 16),
            "mediaLink": f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{obj}?alt=media",
            "outputName": obj,
        }

    def _key_ring(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/locations/{inputs.get('location')}/keyRings/{inputs.get('name') or name}"
        return full, {**inputs, "project": self._p(inputs)}

    def _crypto_key(self, name, inputs, _id):
        full = f"{inputs.get('keyRing')}/cryptoKeys/{inputs.get('name') or name}"
        return full, {**inputs, "primaries": [{"name": f"{full}/cryptoKeyVersions/1", "state": "ENABLED"}]}

    def _dataset(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/datasets/{inputs.get('datasetId')}"
        return full, {**inputs, "project": self._p(inputs), "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/{full}"}

    def _table(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/datasets/{inputs.get('datasetId')}/tables/{inputs.get('tableId')}"
        return full, {**inputs, "project": self._p(inputs), "type": "VIEW" if inputs.get("view") else "TABLE"}

    def _transfer_config(self, name, inputs, _id):
        location = inputs.get("location") or self.region
        full = f"projects/{self.project_number}/locations/{location}/transferConfigs/{digest(name, 8)}-0000-{digest(name + 'x', 4)}"
        return full, {**inputs, "name": full}

    def _firestore(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/databases/{inputs.get('name') or name}"
        return full, {**inputs, "project": self._p(inputs), "uid": digest(full, 16)}

    def _secret(self, name, inputs, _id):
        full = f"projects/{self.project_number}/secrets/{inputs.get('secretId')}"
        return full, {**inputs, "name": full, "project": self._p(inputs)}

    def _secret_version(self, name, inputs, _id):
        full = f"{inputs.get('secret')}/versions/1"
        return full, {**inputs, "name": full, "version": "1"}

    def _named(self, collection: str):
        def make(name, inputs, _id):
            full = f"projects/{self._p(inputs)}/{collection}/{int(digest(name, 12), 16)}"
            return full, {**inputs, "name": full}

        return make

    def _log_metric(self, name, inputs, _id):
        return inputs.get("name") or name, {**inputs, "name": inputs.get("name") or name}

    def _scheduler_job(self, name, inputs, _id):
        job = inputs.get("name") or name
        full = f"projects/{self._p(inputs)}/locations/{inputs.get('region') or self.region}/jobs/{job}"
        return full, {**inputs, "name": job, "state": "ENABLED"}

    def _api(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/locations/global/apis/{inputs.get('apiId')}"
        return full, {**inputs, "name": full, "managedService": f"{inputs.get('apiId')}-{digest(name, 12)}.apigateway.{self._p(inputs)}.cloud.goog"}

    def _api_config(self, name, inputs, _id):
        config_id = f"{inputs.get('apiConfigIdPrefix', '')}{digest(str(inputs.get('openapiDocuments')), 8)}"
        full = f"projects/{self._p(inputs)}/locations/global/apis/{inputs.get('api')}/configs/{config_id}"
        return full, {**inputs, "name": full, "apiConfigId": config_id}

    def _gateway(self, name, inputs, _id):
        full = f"projects/{self._p(inputs)}/locations/{inputs.get('region')}/gateways/{inputs.get('gatewayId')}"
        return full, {**inputs, "name": full, "defaultHostname": f"{inputs.get('gatewayId')}-{digest(name, 8)}.ew.gateway.dev"}

    def _service(self, name, inputs, _id):
        return f"{self._p(inputs)}/{inputs.get('service')}", inputs


def _region_code(region: str) -> str:
    """`europe-west1` → `ew` (the shape of Cloud Run's URL region codes)."""
    parts = region.split("-")
    return (parts[0][0] + parts[1][0]) if len(parts) > 1 else region[:2]


def install(project: str, region: str, stack: str, project_number: str | None = None) -> RecordingMonitor:
    """Point the Pulumi runtime at fresh mocks (non-preview: outputs are known) and return the monitor."""
    mocks = PlatformMocks(project, region, project_number)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="dataplatform", stack=stack, preview=False, monitor=monitor)
    return monitor
