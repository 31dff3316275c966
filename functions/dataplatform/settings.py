"""Environment → ports and use-case dependencies: the ONE place that picks the adapters.

Everything is lazy: importing this module builds nothing, and each piece (clients, the
platform keys, the catalog, compiled anonymizer) is built on first use and then cached for
the life of the process, so a Cloud Function instance pays its cold start once and every
request after that reuses the same clients (connection pools, publisher batches, key
cache). `runtime()` is the process-wide instance; `reset_runtime()` drops it (tests).

Environment variables (all optional locally):

| variable | meaning | default |
|---|---|---|
| DATAPLATFORM_PROJECT | GCP project id (emulators too) | `dataplatform-local` |
| DATAPLATFORM_DEFINITIONS | directory holding `schemas/` (and `workflows/`) | the first directory upward from the working directory that has `schemas/`, else `definitions/` beside `main.py` (the deployed layout) |
| DATAPLATFORM_STATE_DIR | local state (`.dataplatform/`) | `.dataplatform` in the working directory |
| DATAPLATFORM_KMS | `local:<path>` (a Tink key file, `adapters/local_kms.py`) or a Cloud KMS key name `projects/…/cryptoKeys/…` | `local:<state dir>/local_kms_keyset.json` |
| DATAPLATFORM_CONFIG_BUCKET | GCS bucket with the platform key material | `<project>-config` |
| DATAPLATFORM_COLLECT_API_KEYS | client keys `collect` accepts: comma-separated, or a JSON list (the deployed Secret Manager value) | none (collect then refuses to start) |
| DATAPLATFORM_FIRESTORE_DATABASE | the Firestore database holding the key store | `(default)` |
| DATAPLATFORM_KEYSTORE | key store kind: `firestore` | `firestore` |
| DATAPLATFORM_WAREHOUSE | `bigquery` or `duckdb:<path>` (monitor, reveal, endpoint runs) | `duckdb:<state dir>/warehouse.duckdb` |
| DATAPLATFORM_BIGQUERY_LOCATION | BigQuery / Data Transfer location (with `bigquery`) | `US` |
| PUBSUB_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST, STORAGE_EMULATOR_HOST | the emulators; the client libraries read them | unset (real GCP) |

With `STORAGE_EMULATOR_HOST` set the config bucket is created on first use (in GCP it is
Pulumi's, and a missing bucket is a deployment error).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dataplatform.definitions.messages import did_you_mean
from dataplatform.errors import PlatformError

if TYPE_CHECKING:  # imports of what the runtime builds stay lazy
    from dataplatform.compile.avro_codec import AvroCodec
    from dataplatform.definitions.loader import Catalog
    from dataplatform.pipeline.anonymize_handler import AnonymizeDeps
    from dataplatform.pipeline.collect import CollectDeps
    from dataplatform.pipeline.forget import ForgetDeps
    from dataplatform.pipeline.monitor import MonitorDeps
    from dataplatform.adapters.warehouse_base import ManagedWarehouse
    from dataplatform.ports import BlobStore, Clock, KeyStore, Kms, Publisher
    from dataplatform.privacy.anonymizer import Anonymizer
    from dataplatform.privacy.key_service import KeyService
    from dataplatform.privacy.keys import PlatformKeys

UTC = timezone.utc

ENV_PROJECT = "DATAPLATFORM_PROJECT"
ENV_DEFINITIONS = "DATAPLATFORM_DEFINITIONS"
ENV_STATE_DIR = "DATAPLATFORM_STATE_DIR"
ENV_KMS = "DATAPLATFORM_KMS"
ENV_CONFIG_BUCKET = "DATAPLATFORM_CONFIG_BUCKET"
ENV_COLLECT_API_KEYS = "DATAPLATFORM_COLLECT_API_KEYS"
ENV_KEYSTORE = "DATAPLATFORM_KEYSTORE"
ENV_WAREHOUSE = "DATAPLATFORM_WAREHOUSE"
ENV_FIRESTORE_DATABASE = "DATAPLATFORM_FIRESTORE_DATABASE"
ENV_BIGQUERY_LOCATION = "DATAPLATFORM_BIGQUERY_LOCATION"
DUCKDB_PREFIX = "duckdb:"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"

DEFAULT_PROJECT = "dataplatform-local"
DEFAULT_STATE_DIR = ".dataplatform"
LOCAL_KMS_PREFIX = "local:"
KEYSTORES = ("firestore",)
FUNCTION_SOURCE = Path(__file__).resolve().parents[1]
"""The deployed function source (`functions/`: main.py + the dataplatform package)."""


class SettingsError(PlatformError):
    """An environment variable has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    """The platform's configuration, read from the environment once (`Settings.from_env`)."""

    project: str
    definitions: Path
    state_dir: Path
    kms: str
    config_bucket: str
    collect_api_keys: tuple[str, ...]
    keystore: str = "firestore"
    warehouse: str = ""
    """`bigquery` or `duckdb:<absolute path>`."""
    bigquery_location: str = "US"
    firestore_database: str = "(default)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Read and check the variables; SettingsError naming the variable when one is wrong."""
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        project = env.get(ENV_PROJECT, "").strip() or DEFAULT_PROJECT
        state_dir = _absolute(env.get(ENV_STATE_DIR, "").strip() or DEFAULT_STATE_DIR, cwd)
        definitions = _definitions(env.get(ENV_DEFINITIONS, "").strip(), cwd)
        kms = env.get(ENV_KMS, "").strip() or f"{LOCAL_KMS_PREFIX}{state_dir / 'local_kms_keyset.json'}"
        if kms.startswith(LOCAL_KMS_PREFIX):
            path = kms[len(LOCAL_KMS_PREFIX):]
            if not path:
                raise SettingsError(f"{ENV_KMS}=local: needs a key file path, e.g. local:.dataplatform/local_kms_keyset.json")
            kms = f"{LOCAL_KMS_PREFIX}{_absolute(path, cwd)}"
        elif not kms.startswith("projects/"):
            raise SettingsError(
                f"{ENV_KMS} must be local:<key file> or a Cloud KMS key name "
                "projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>"
            )
        keystore = env.get(ENV_KEYSTORE, "").strip() or "firestore"
        if keystore not in KEYSTORES:
            raise SettingsError(
                f"{ENV_KEYSTORE}={keystore!r} is not a key store kind{did_you_mean(keystore, KEYSTORES)}; "
                f"use one of: {', '.join(KEYSTORES)}"
            )
        keys = _api_keys(env.get(ENV_COLLECT_API_KEYS, ""))
        warehouse = env.get(ENV_WAREHOUSE, "").strip() or f"{DUCKDB_PREFIX}{state_dir / 'warehouse.duckdb'}"
        if warehouse.startswith(DUCKDB_PREFIX) and warehouse != DUCKDB_PREFIX:
            warehouse = f"{DUCKDB_PREFIX}{_absolute(warehouse[len(DUCKDB_PREFIX):], cwd)}"
        elif warehouse != "bigquery":
            raise SettingsError(f"{ENV_WAREHOUSE} must be bigquery or duckdb:<database file>, not {warehouse!r}")
        return cls(
            project=project,
            definitions=definitions,
            state_dir=state_dir,
            kms=kms,
            config_bucket=env.get(ENV_CONFIG_BUCKET, "").strip() or f"{project}-config",
            collect_api_keys=keys,
            keystore=keystore,
            warehouse=warehouse,
            bigquery_location=env.get(ENV_BIGQUERY_LOCATION, "").strip() or "US",
            firestore_database=env.get(ENV_FIRESTORE_DATABASE, "").strip() or "(default)",
        )

    def describe(self) -> dict[str, Any]:
        """For status output and logs: API keys are counted, never shown."""
        return {
            "project": self.project,
            "definitions": str(self.definitions),
            "state_dir": str(self.state_dir),
            "kms": self.kms,
            "config_bucket": self.config_bucket,
            "collect_api_keys": len(self.collect_api_keys),
            "keystore": self.keystore,
            "warehouse": self.warehouse,
        }


def _api_keys(value: str) -> tuple[str, ...]:
    """Comma-separated keys, or a JSON list of strings (how the deployed secret holds them)."""
    text = value.strip()
    if text.startswith("["):
        try:
            keys = json.loads(text)
        except ValueError:
            raise SettingsError(f"{ENV_COLLECT_API_KEYS} starts like a JSON list but is not valid JSON") from None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise SettingsError(f"{ENV_COLLECT_API_KEYS} must be a JSON list of strings")
        return tuple(k.strip() for k in keys if k.strip())
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _absolute(path: str, cwd: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (cwd / p)


def _definitions(value: str, cwd: Path) -> Path:
    if value:
        path = _absolute(value, cwd)
        if not (path / "schemas").is_dir():
            raise SettingsError(f"{ENV_DEFINITIONS}={value!r}: {path} has no schemas/ directory")
        return path
    for candidate in (cwd, *cwd.parents):
        if (candidate / "schemas").is_dir():
            return candidate
    deployed = FUNCTION_SOURCE / "definitions"
    if (deployed / "schemas").is_dir():
        return deployed
    raise SettingsError(
        f"no definitions found: no schemas/ directory in {cwd} or above, nor in {deployed}; "
        f"set {ENV_DEFINITIONS} to the directory holding schemas/ and workflows/"
    )


class SystemClock:
    """ports.Clock on the system clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


T = TypeVar("T")


class Runtime:
    """The wired ports and use-case dependencies of one process, each built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()

    def _once(self, name: str, build: Callable[[], T]) -> T:
        # Under a lock: functions-framework serves requests on several threads, and two
        # clients or two compiled catalogs would be waste. A failed build is not cached.
        with self._lock:
            cache = self.__dict__.setdefault("_built", {})
            if name not in cache:
                cache[name] = build()
            return cache[name]  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ ports

    @property
    def clock(self) -> Clock:
        return self._once("clock", SystemClock)

    @property
    def kms(self) -> Kms:
        def build() -> Kms:
            if self.settings.kms.startswith(LOCAL_KMS_PREFIX):
                from dataplatform.adapters.local_kms import LocalKms

                return LocalKms(Path(self.settings.kms[len(LOCAL_KMS_PREFIX):]))
            from dataplatform.adapters.cloud_kms import CloudKms

            return CloudKms(self.settings.kms)

        return self._once("kms", build)

    @property
    def blobs(self) -> BlobStore:
        def build() -> BlobStore:
            from dataplatform.adapters.gcs import GcsBlobStore

            local = bool(os.environ.get(STORAGE_EMULATOR_ENV))
            return GcsBlobStore(self.settings.config_bucket, project=self.settings.project, create_bucket=local)

        return self._once("blobs", build)

    @property
    def key_store(self) -> KeyStore:
        def build() -> KeyStore:
            from dataplatform.adapters.firestore_keystore import FirestoreKeyStore

            return FirestoreKeyStore(project=self.settings.project, database=self.settings.firestore_database)

        return self._once("key_store", build)

    @property
    def publisher(self) -> Publisher:
        def build() -> Publisher:
            from dataplatform.adapters.pubsub import PubSubPublisher

            return PubSubPublisher(self.settings.project)

        return self._once("publisher", build)

    @property
    def warehouse(self) -> ManagedWarehouse:
        """BigQuery in GCP; the local DuckDB file otherwise (only one process may open it)."""

        def build() -> ManagedWarehouse:
            if self.settings.warehouse == "bigquery":
                from dataplatform.adapters.bigquery_warehouse import BigQueryWarehouse

                return BigQueryWarehouse(self.settings.project, location=self.settings.bigquery_location)
            from dataplatform.adapters.duckdb_warehouse import DuckDBWarehouse

            return DuckDBWarehouse(self.settings.warehouse[len(DUCKDB_PREFIX):])

        return self._once("warehouse", build)

    # ------------------------------------------------------------------ platform pieces

    @property
    def platform_keys(self) -> PlatformKeys:
        def build() -> PlatformKeys:
            from dataplatform.privacy.keys import PlatformKeys

            return PlatformKeys.load(self.kms, self.blobs)

        return self._once("platform_keys", build)

    @property
    def key_service(self) -> KeyService:
        def build() -> KeyService:
            from dataplatform.privacy.key_service import KeyService

            return KeyService(self.key_store, self.platform_keys, self.clock)

        return self._once("key_service", build)

    @property
    def catalog(self) -> Catalog:
        def build() -> Catalog:
            from dataplatform.definitions.loader import load_catalog

            return load_catalog(self.settings.definitions)

        return self._once("catalog", build)

    @property
    def anonymizer(self) -> Anonymizer:
        def build() -> Anonymizer:
            from dataplatform.privacy.anonymizer import Anonymizer

            return Anonymizer(self.catalog, self.key_service, self.platform_keys, self.clock)

        return self._once("anonymizer", build)

    @property
    def codecs(self) -> dict[str, AvroCodec]:
        def build() -> dict[str, AvroCodec]:
            from dataplatform.compile.avro_codec import codec_for

            return {schema.key: codec_for(schema) for schema in self.catalog.schemas}

        return self._once("codecs", build)

    # ------------------------------------------------------------------ use-case deps

    def collect_deps(self) -> CollectDeps:
        def build() -> CollectDeps:
            from dataplatform.pipeline.collect import CollectDeps

            if not self.settings.collect_api_keys:
                raise SettingsError(
                    f"collect has no client API keys: set {ENV_COLLECT_API_KEYS} to a comma-separated "
                    "list of keys (clients send one in the X-Api-Key header)"
                )
            return CollectDeps.create(
                self.catalog.schemas, self.settings.collect_api_keys, self.publisher, self.platform_keys, self.clock
            )

        return self._once("collect_deps", build)

    def anonymize_deps(self) -> AnonymizeDeps:
        def build() -> AnonymizeDeps:
            from dataplatform.pipeline.anonymize_handler import AnonymizeDeps

            return AnonymizeDeps(self.anonymizer, self.publisher, self.codecs, self.platform_keys, self.clock)

        return self._once("anonymize_deps", build)

    def forget_deps(self) -> ForgetDeps:
        def build() -> ForgetDeps:
            from dataplatform.pipeline.forget import ForgetDeps

            return ForgetDeps(self.key_service)

        return self._once("forget_deps", build)

    def monitor_deps(self) -> MonitorDeps:
        """Freshness and quality over the warehouse; in GCP also the Data Transfer runs."""

        def build() -> MonitorDeps:
            from dataplatform.pipeline.monitor import MonitorDeps

            transfers = None
            if self.settings.warehouse == "bigquery":
                from dataplatform.adapters.bigquery_transfers import BigQueryTransferRuns

                transfers = BigQueryTransferRuns(self.settings.project, self.settings.bigquery_location)
            return MonitorDeps(self.catalog, self.warehouse, self.clock, transfers)

        return self._once("monitor_deps", build)


_RUNTIME: Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> Runtime:
    """The process-wide runtime, from the environment on first call."""
    global _RUNTIME
    if _RUNTIME is None:
        with _RUNTIME_LOCK:
            if _RUNTIME is None:
                _RUNTIME = Runtime(Settings.from_env())
    return _RUNTIME


def reset_runtime() -> None:
    """Forget the process-wide runtime (tests; a changed environment)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        _RUNTIME = None
