"""`ports.BlobStore` on Google Cloud Storage: the platform config bucket.

It holds a few small objects (the KMS-wrapped platform key material) that are created once
and read at every cold start. `create` is create-if-absent through GCS preconditions
(`ifGenerationMatch=0`): of several racing creators exactly one writes, the others get
412 Precondition Failed and answer False.

Known gap, local only: gcp-storage-emulator ignores `ifGenerationMatch` and overwrites. So
`create` first checks that the object does not exist; that closes the gap for sequential
callers (a second `keys bootstrap` never overwrites), but two creators racing within the
same few milliseconds against the emulator can both write and the last one wins. On real
GCS the precondition makes the race safe. Locally only `dataplatform keys bootstrap` (run
once by `local up`) creates objects, so the window is not hit in practice.

With `STORAGE_EMULATOR_HOST` set the client library talks to the emulator by itself; we
then pass anonymous credentials so no Google login is needed. google-cloud imports are
lazy (inside the constructor's client factory and the calls).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dataplatform.errors import PlatformError, TransientError

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
DEFAULT_EMULATOR_PROJECT = "dataplatform-local"
TIMEOUT_SECONDS = 30.0
OBJECT_ROLE = "roles/storage.objectUser"

T = TypeVar("T")


def storage_client(project: str | None = None) -> Any:
    """A google-cloud-storage client: anonymous against the emulator, ADC otherwise."""
    from google.cloud import storage

    if os.environ.get(EMULATOR_ENV):
        from google.auth.credentials import AnonymousCredentials

        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_EMULATOR_PROJECT
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client(project=project)


class GcsBlobStore:
    """One GCS bucket as a create-if-absent object store.

    `create_bucket=True` (local stack only) creates the bucket on first use when missing;
    in GCP the bucket is Pulumi's and a missing one is a deployment error.
    """

    def __init__(
        self,
        bucket: str,
        client: Any = None,
        *,
        project: str | None = None,
        create_bucket: bool = False,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        if not bucket or "/" in bucket:
            raise PlatformError(f"GCS bucket name {bucket!r} is not a bucket name (no gs://, no slashes)")
        self._name = bucket
        self._client = client
        self._project = project
        self._create_bucket = create_bucket
        self._timeout = timeout
        self._bucket: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GcsBlobStore({self._name!r})"

    # ------------------------------------------------------------------ the port

    def read(self, name: str) -> bytes | None:
        from google.api_core import exceptions

        def download() -> bytes | None:
            try:
                return bytes(self._blob(name).download_as_bytes(timeout=self._timeout, retry=self._retry()))
            except exceptions.NotFound:
                return None

        return self._guard(f"read gs://{self._name}/{name}", download)

    def create(self, name: str, data: bytes) -> bool:
        from google.api_core import exceptions

        def upload() -> bool:
            blob = self._blob(name)
            # The emulator ignores ifGenerationMatch (see the module docstring): check first.
            if blob.exists(timeout=self._timeout, retry=self._retry()):
                return False
            try:
                blob.upload_from_string(
                    data,
                    content_type="application/octet-stream",
                    if_generation_match=0,
                    timeout=self._timeout,
                    retry=self._retry(),
                )
            except exceptions.PreconditionFailed:
                return False
            return True

        return self._guard(f"create gs://{self._name}/{name}", upload)

    # ------------------------------------------------------------------ plumbing

    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self._timeout)

    def _blob(self, name: str) -> Any:
        return self._get_bucket().blob(name)

    def _get_bucket(self) -> Any:
        if self._bucket is None:
            with self._lock:
                if self._bucket is None:
                    if self._client is None:
                        self._client = storage_client(self._project)
                    self._bucket = self._ensure_bucket() if self._create_bucket else self._client.bucket(self._name)
        return self._bucket

    def _ensure_bucket(self) -> Any:
        from google.api_core import exceptions

        bucket = self._client.lookup_bucket(self._name, timeout=self._timeout, retry=self._retry())
        if bucket is not None:
            return bucket
        try:
            return self._client.create_bucket(self._name, timeout=self._timeout, retry=self._retry())
        except exceptions.Conflict:  # created meanwhile by a concurrent caller
            return self._client.bucket(self._name)

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        """Run a storage call, mapping failures to TransientError / PlatformError."""
        import requests
        from google.api_core import exceptions
        from google.auth.exceptions import TransportError

        try:
            return call()
        except (
            exceptions.ServiceUnavailable,
            exceptions.InternalServerError,
            exceptions.BadGateway,
            exceptions.GatewayTimeout,
            exceptions.TooManyRequests,
            exceptions.DeadlineExceeded,
            exceptions.RetryError,
            requests.ConnectionError,
            requests.Timeout,
            TransportError,
        ) as exc:
            raise TransientError(f"GCS {what} failed transiently ({type(exc).__name__}); retry") from exc
        except exceptions.NotFound:
            raise PlatformError(
                f"GCS {what} failed: bucket {self._name!r} does not exist; create it with "
                "`pulumi up` (GCP) or `dataplatform local up` (local)"
            ) from None
        except exceptions.Forbidden:
            raise PlatformError(
                f"GCS {what} was denied: grant the caller {OBJECT_ROLE} on bucket {self._name!r}"
            ) from None
        except exceptions.GoogleAPICallError as exc:
            raise PlatformError(f"GCS {what} failed: {type(exc).__name__}: {exc.message}") from None
