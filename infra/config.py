"""Typed stack configuration (`Pulumi.<stack>.yaml`) and the domain filter.

One stack is one deployment of the platform into one GCP project. Its config holds:

| key                                   | required | what                                                  |
|---------------------------------------|----------|-------------------------------------------------------|
| `gcp:project`                         | yes      | project id (the gcp provider reads it too)            |
| `gcp:region`                          | yes      | region of functions, KMS, scheduler, Firestore        |
| `dataplatform:alertEmail`             | yes      | where alert notifications go                          |
| `dataplatform:collectorApiKeys`       | yes, secret | JSON list of API keys `collect` accepts            |
| `dataplatform:domains`                | no       | deploy only these domains' event types and endpoints  |
| `dataplatform:projectNumber`          | no       | saves a lookup; names the Google service agents       |
| `dataplatform:bigqueryLocation`       | no       | dataset location (default: the region)                |
| `dataplatform:firestoreLocation`      | no       | key-store location (default: the region)              |
| `dataplatform:forgetInvokers`         | no       | IAM members allowed to call `forget`                  |
| `dataplatform:partitionExpirationDays`| no       | datasets' default partition expiration (default 90)   |

Domains shard a big catalog: each stack (one project) deploys the event types and
endpoints of its domains and nothing else, so no stack carries every event type. A stack's
endpoints must only read tables of its own domains — the endpoint SQL names `events.x`
without a project, so a table of another stack's project is out of reach and `select`
says which domain to add instead of deploying a query that cannot run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dataplatform.compile import sql as sqlc
from dataplatform.definitions.loader import Catalog
from dataplatform.definitions.messages import did_you_mean
from dataplatform.definitions.models import Endpoint, EventSchema, RelationshipCheck
from dataplatform.errors import PlatformError

NAMESPACE = "dataplatform"
SECRET_PLACEHOLDER = "[secret]"
DEFAULT_PARTITION_EXPIRATION_DAYS = 90

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain):[^\s:]+$")


class ConfigError(PlatformError):
    """A stack config value is missing or wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from the stack config, validated."""

    stack: str
    project: str
    region: str
    alert_email: str
    collector_api_keys: Any
    """Secret JSON list of API keys: a secret `pulumi.Output[str]` inside the program."""
    domains: tuple[str, ...] = ()
    project_number: str | None = None
    bigquery_location: str = ""
    firestore_location: str = ""
    forget_invokers: tuple[str, ...] = ()
    partition_expiration_days: int = DEFAULT_PARTITION_EXPIRATION_DAYS

    def __post_init__(self) -> None:
        where = f"Pulumi.{self.stack}.yaml"
        if not _PROJECT_ID.match(self.project):
            raise ConfigError(f"{where}: gcp:project {self.project!r} is not a GCP project id (6-30 of a-z, 0-9, -)")
        if not _REGION.match(self.region):
            raise ConfigError(f"{where}: gcp:region {self.region!r} is not a GCP region (e.g. europe-west1)")
        if not _EMAIL.match(self.alert_email):
            raise ConfigError(f"{where}: {NAMESPACE}:alertEmail {self.alert_email!r} is not an email address")
        if self.project_number is not None and not self.project_number.isdigit():
            raise ConfigError(f"{where}: {NAMESPACE}:projectNumber {self.project_number!r} must be digits")
        for member in self.forget_invokers:
            if not _MEMBER.match(member):
                raise ConfigError(
                    f"{where}: {NAMESPACE}:forgetInvokers member {member!r} must look like "
                    "user:|group:|serviceAccount:|domain:<id> (public members are not allowed)"
                )
        if not 1 <= self.partition_expiration_days <= 3650:
            raise ConfigError(f"{where}: {NAMESPACE}:partitionExpirationDays must be 1 to 3650")
        if not self.bigquery_location:
            object.__setattr__(self, "bigquery_location", self.region)
        if not self.firestore_location:
            object.__setattr__(self, "firestore_location", self.region)

    @classmethod
    def from_pulumi(cls) -> StackConfig:
        """Read the running stack's config (inside the Pulumi program or under mocks)."""
        import pulumi

        stack = pulumi.get_stack()
        gcp = pulumi.Config("gcp")
        own = pulumi.Config(NAMESPACE)
        where = f"Pulumi.{stack}.yaml"

        def required(config: Any, key: str, hint: str) -> str:
            value = config.get(key)
            if not value:
                raise ConfigError(f"{where}: {config.name}:{key} is not set; {hint}")
            return value

        keys = own.get_secret("collectorApiKeys")
        if keys is None:
            raise ConfigError(
                f"{where}: {NAMESPACE}:collectorApiKeys is not set; set it as a secret: "
                f"pulumi config set --secret {NAMESPACE}:collectorApiKeys '[\"<key>\", ...]'"
            )
        return cls(
            stack=stack,
            project=required(gcp, "project", "pulumi config set gcp:project <project-id>"),
            region=required(gcp, "region", "pulumi config set gcp:region <region>"),
            alert_email=required(own, "alertEmail", f"pulumi config set {NAMESPACE}:alertEmail <address>"),
            collector_api_keys=keys.apply(lambda text: _check_api_keys(text, where)),
            domains=tuple(_string_list(own.get_object("domains"), "domains", where)),
            project_number=own.get("projectNumber"),
            bigquery_location=own.get("bigqueryLocation") or "",
            firestore_location=own.get("firestoreLocation") or "",
            forget_invokers=tuple(_string_list(own.get_object("forgetInvokers"), "forgetInvokers", where)),
            partition_expiration_days=own.get_int("partitionExpirationDays") or DEFAULT_PARTITION_EXPIRATION_DAYS,
        )


@dataclass(frozen=True)
class Selection:
    """The definitions one stack deploys."""

    schemas: tuple[EventSchema, ...]
    endpoints: tuple[Endpoint, ...]


def select(catalog: Catalog, config: StackConfig) -> Selection:
    """The event types and endpoints of the stack's domains (all when no filter is set)."""
    if not config.domains:
        return Selection(catalog.schemas, catalog.endpoints)
    known = sorted({d.domain for d in (*catalog.schemas, *catalog.endpoints)})
    for domain in config.domains:
        if domain not in known:
            raise ConfigError(
                f"Pulumi.{config.stack}.yaml: {NAMESPACE}:domains lists unknown domain {domain!r}"
                f"{did_you_mean(domain, known)}; known domains: {', '.join(known)}"
            )
    wanted = set(config.domains)
    schemas = tuple(s for s in catalog.schemas if s.domain in wanted)
    endpoints = tuple(e for e in catalog.endpoints if e.domain in wanted)
    deployed = {s.table_ref for s in schemas} | {f"events.{s.dedup_view}" for s in schemas} | {e.table_ref for e in endpoints}
    tables = catalog.tables()
    for endpoint in endpoints:
        reads = [ref.ref for ref in sqlc.referenced_tables(sqlc.parse(endpoint.sql))]
        reads += [check.to for check in endpoint.checks if isinstance(check, RelationshipCheck)]
        for ref in reads:
            if ref in tables and ref not in deployed:
                owner = tables[ref]
                raise ConfigError(
                    f"Pulumi.{config.stack}.yaml: endpoint {endpoint.name!r} (domain {endpoint.domain!r}) reads "
                    f"{ref} of domain {owner.domain!r}, which this stack does not deploy; add {owner.domain!r} "
                    f"to {NAMESPACE}:domains or move the endpoint to a stack that has it"
                )
    return Selection(schemas, endpoints)


# --------------------------------------------------------------------------- stack files


@dataclass(frozen=True)
class StackFile:
    """`Pulumi.<stack>.yaml` read offline: plain values, and which keys are secrets."""

    stack: str
    values: Mapping[str, str]
    secret_keys: tuple[str, ...]
    placeholders: tuple[str, ...]
    """Secret keys whose ciphertext cannot be read offline: the plan uses a placeholder."""


def stack_files(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def read_stack_file(root: str | Path, stack: str | None = None) -> StackFile:
    """Read `Pulumi.<stack>.yaml` (the only one when `stack` is None) into Pulumi config values.

    Secrets (`secure:` values) are encrypted by the Pulumi CLI and cannot be read here;
    they become `[secret]` placeholders, and a required secret that is not set at all gets
    one too, so an offline plan shows what would be deployed without knowing the secret.
    """
    root = Path(root)
    stacks = stack_files(root)
    if stack is None:
        if len(stacks) != 1:
            found = ", ".join(stacks) or "none"
            raise ConfigError(f"choose a stack with --stack NAME (stack files in {root}: {found})")
        stack = stacks[0]
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError(f"no stack config {path}{did_you_mean(stack, stacks)}; stacks here: {', '.join(stacks) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from None
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path.name}: `config:` must be a mapping of keys to values")
    values: dict[str, str] = {}
    secrets: list[str] = []
    placeholders: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = SECRET_PLACEHOLDER
            secrets.append(full)
            placeholders.append(full)
        elif isinstance(value, str):
            values[full] = value
        else:
            values[full] = json.dumps(value)
    required_secret = f"{NAMESPACE}:collectorApiKeys"
    if required_secret not in values:
        values[required_secret] = SECRET_PLACEHOLDER
        secrets.append(required_secret)
        placeholders.append(required_secret)
    return StackFile(stack, values, tuple(secrets), tuple(placeholders))


def _check_api_keys(text: str, where: str) -> str:
    """The collector keys as compact JSON; the error never repeats a key."""
    if text == SECRET_PLACEHOLDER:
        return text
    try:
        keys = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where}: {NAMESPACE}:collectorApiKeys must be a JSON list of strings") from None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where}: {NAMESPACE}:collectorApiKeys must be a non-empty JSON list of strings")
    short = [i for i, k in enumerate(keys) if len(k) < 16]
    if short:
        raise ConfigError(f"{where}: {NAMESPACE}:collectorApiKeys items {short} are shorter than 16 characters")
    return json.dumps(keys, separators=(",", ":"))


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {NAMESPACE}:{key} must be a list of strings")
    return list(value)
