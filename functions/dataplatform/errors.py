"""The one error root of the platform.

Every error the platform raises on purpose derives from `PlatformError`, and its message
says what was found and what to do, so the CLI can print it as-is and exit 1.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every deliberate dataplatform error."""


class TransientError(PlatformError):
    """A dependency (KMS, key store, publish) failed in a way a retry may fix.

    Functions let it propagate so Pub/Sub redelivers the message.
    """
