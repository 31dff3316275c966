"""Deterministic GCP resource names derived from definition keys.

Every name the program gives a cloud resource comes from here, so the same definitions
always produce the same names (a plan is reproducible, a rename is visible) and each name
fits the rules of the service that owns it. Keys are lower snake case (`track_played_v1`);
services that forbid `_` (Cloud Functions, service accounts, Cloud Run) get `-` instead, and
a name that would be too long is cut and given a stable hash suffix so two long keys with a
common prefix never collide.
"""

from __future__ import annotations

import hashlib
import re

FUNCTION_PREFIX = "dp-"
MAX_FUNCTION_NAME = 49
"""Gen2 functions are Cloud Run services: 49 characters keeps both services' limits."""

MAX_SERVICE_ACCOUNT_ID = 30
MIN_SERVICE_ACCOUNT_ID = 6

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def digest(text: str, length: int = 6) -> str:
    """A short, stable hex digest of `text` (name suffixes, fake ids under mocks)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns_label(text: str, max_len: int) -> str:
    """`text` as a DNS-style label (`a-z0-9-`, starts with a letter), at most `max_len` long."""
    label = _NOT_DNS.sub("-", text.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label or not label[0].isalpha():
        label = f"x-{label}".rstrip("-")
    if len(label) <= max_len:
        return label
    suffix = digest(text)
    return f"{label[: max_len - len(suffix) - 1].rstrip('-')}-{suffix}"


def function_name(kind: str, key: str | None = None) -> str:
    """`dp-collect`, `dp-anonymize-track-played-v1`: the function (and Cloud Run service) id."""
    base = f"{FUNCTION_PREFIX}{kind}" if key is None else f"{FUNCTION_PREFIX}{kind}-{key}"
    return dns_label(base, MAX_FUNCTION_NAME)


def service_account_id(name: str) -> str:
    """`dp-collect`, `dp-q-daily-track-plays`: a service account id (6 to 30 characters)."""
    account = dns_label(name, MAX_SERVICE_ACCOUNT_ID)
    return account if len(account) >= MIN_SERVICE_ACCOUNT_ID else f"{account}-account"


def endpoint_service_account_id(endpoint: str) -> str:
    """The identity of one endpoint's scheduled query: `dp-q-<endpoint>`."""
    return service_account_id(f"dp-q-{endpoint}")


def raw_topic(key: str) -> str:
    return f"{key}-raw"


def clean_topic(key: str) -> str:
    return key


def dead_letter_topic(key: str) -> str:
    return f"{key}-dead-letter"


def bigquery_subscription(key: str) -> str:
    return f"{key}-bigquery"


def scheduler_job(endpoint: str) -> str:
    return f"monitor-{endpoint.replace('_', '-')}"


def label_value(text: str) -> str:
    """A GCP label value: lower case letters, digits, `_` and `-`, at most 63 characters."""
    value = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return value[:63]
