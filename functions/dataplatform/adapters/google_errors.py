"""Which google-cloud failures a retry may fix: one list for every Google adapter.

Adapters translate these into `TransientError` (functions then raise, so Pub/Sub
redelivers) and everything else into a `PlatformError` that says what to fix. Imported
lazily: only code that already talks to Google pays for `google.api_core`.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def transient_types() -> tuple[type[BaseException], ...]:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    return (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.TooManyRequests,
        gexc.ResourceExhausted,
        gexc.Aborted,
        gexc.Unknown,
        gexc.GatewayTimeout,
        gexc.BadGateway,
        gexc.RetryError,
        auth_exc.TransportError,
        ConnectionError,
        TimeoutError,
    )
