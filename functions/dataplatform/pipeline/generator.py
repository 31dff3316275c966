"""Synthetic traffic: realistic events from the event schemas, each with its expected outcome.

Why it exists: the demo, the end-to-end tests and the pipeline benchmark need traffic that
looks like a music service's (so the privacy policies meet real-looking personal data) and
whose fate is known in advance (so "every event is accounted for" can be checked exactly).

What it makes, deterministically from `seed` (and `now`, `run_id`):
- a fixed population of users, each with stable personal data: account id, e-mail, name,
  birth date, home city with precise coordinates, postcode, phone number, one device (id,
  advertising id, OS, model, app version), an IPv4 or IPv6 address and a few personal
  search queries;
- valid events of every schema of the catalog, a user picked per event (a few heavy users,
  a long tail), values chosen per field from its name, type and description: the
  enumerations written in descriptions ("Operating system (android, ios, web, ...)",
  "audio, display or video.") are used as the allowed values; track, artist and album ids
  come from a small fixed music catalog; counts, durations and flags are consistent within
  an event (ms_played <= track_duration_ms, skipped when under 30 s, query_length =
  len(query), clicked_position within the results shown);
- a chosen share of invalid events, spread evenly over `INVALID_KINDS` (eight kinds, each
  with the reason and the stage that must reject it);
- a chosen share of exact duplicates: a resend of an earlier event (the same dict, so the
  same event_id), placed later in the stream, as a client retry would.

Every `GeneratedEvent` carries `seq` (the distinct event it is, shared by its duplicates),
its claimed `event_type`, its `event_id` (None for the `missing_event_id` kind), the
expected `reason`/`stage` (None for an event that must be loaded) and `pii`: (field path,
value as text) of its fields that have a privacy policy, which must never be found in clear
in the warehouse (`pii_values`, `PiiIndex`).
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import string
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, get_args

from dataplatform.definitions.models import EventSchema, FieldDef
from dataplatform.errors import PlatformError

UTC = timezone.utc

InvalidKind = Literal[
    "wrong_type",
    "missing_required",
    "unknown_event_type",
    "missing_event_id",
    "bad_event_time",
    "clock_skew",
    "too_late",
    "oversize",
]
INVALID_KINDS: tuple[str, ...] = get_args(InvalidKind)

EXPECTED: dict[str, tuple[str, str]] = {
    "wrong_type": ("schema_violation", "anonymize"),
    "missing_required": ("schema_violation", "anonymize"),
    "unknown_event_type": ("unknown_event_type", "collect"),
    "missing_event_id": ("invalid_envelope", "collect"),
    "bad_event_time": ("invalid_envelope", "collect"),
    "clock_skew": ("clock_skew", "anonymize"),
    "too_late": ("too_late", "anonymize"),
    "oversize": ("too_large", "collect"),
}
"""Invalid kind → (failed-event reason, stage that rejects it) under the platform's limits."""

UNKNOWN_EVENT_TYPE = "podcast_episode_played"
"""The event type the `unknown_event_type` kind claims: plausible, but in no catalog here."""

OVERSIZE_BYTES = 120_000
"""Padding of an `oversize` event: over collect's and the anonymizer's 100 KB event limit."""

CLOCK_SKEW = timedelta(hours=3)
"""How far in the future a `clock_skew` event claims to be (the platform accepts 10 min)."""

TOO_LATE_MARGIN = timedelta(days=3)
"""How far beyond its table's retention a `too_late` event is (its partition has expired)."""

MIN_PII_SUBSTRING = 8
"""PII values at least this long are searched as substrings; shorter ones by equality only
(a 4-digit value would otherwise "occur" by chance in ciphertext and hex digests)."""

EVENT_TYPE_WEIGHTS = {
    "track_played": 50.0,
    "app_session_started": 14.0,
    "search_performed": 12.0,
    "ad_impression": 12.0,
    "playlist_modified": 6.0,
    "subscription_changed": 3.0,
    "user_registered": 3.0,
}
"""Share of each event type in the traffic (a streaming service is mostly plays); a schema
not listed here gets weight 3."""


# --------------------------------------------------------------------------- the population


_FIRST = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Elias", "Sofia", "Hugo", "Lea", "Mateo",
    "Ines", "Jonas", "Zoe", "Malik", "Aisha", "Kenji", "Yuki", "Priya", "Arjun", "Chloe", "Oskar", "Freya",
    "Nia", "Tomas", "Lucia", "Dmitri", "Amara", "Felix", "Ingrid", "Rafael", "Selin", "Omar", "Hana", "Leon",
)
_LAST = (
    "Schmidt", "Garcia", "Rossi", "Dubois", "Nowak", "Jansen", "Silva", "Andersson", "Kowalski", "Murphy",
    "Yilmaz", "Tanaka", "Okafor", "Novak", "Costa", "Larsen", "Moreau", "Fischer", "Patel", "Kim",
    "Haddad", "Berg", "Lindqvist", "Romero", "Weber", "Virtanen", "Horvat", "Mensah", "Ito", "Keller",
)
_MAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "gmx.de", "yahoo.fr", "icloud.com", "web.de", "hey.com")

_CITIES = (
    # city, country, lat, lon, currency, postcode pattern ("9" digit, "A" letter)
    ("Berlin", "DE", 52.520008, 13.404954, "EUR", "99999"),
    ("Hamburg", "DE", 53.551086, 9.993682, "EUR", "99999"),
    ("Paris", "FR", 48.856613, 2.352222, "EUR", "99999"),
    ("Lyon", "FR", 45.764043, 4.835659, "EUR", "99999"),
    ("Madrid", "ES", 40.416775, -3.703790, "EUR", "99999"),
    ("Milan", "IT", 45.464204, 9.189982, "EUR", "99999"),
    ("Amsterdam", "NL", 52.367573, 4.904139, "EUR", "9999 AA"),
    ("Stockholm", "SE", 59.329323, 18.068581, "SEK", "999 99"),
    ("Warsaw", "PL", 52.229676, 21.012229, "PLN", "99-999"),
    ("London", "GB", 51.507351, -0.127758, "GBP", "AA9 9AA"),
    ("Dublin", "IE", 53.349805, -6.260310, "EUR", "A99 A9A9"),
    ("New York", "US", 40.712776, -74.005974, "USD", "99999"),
    ("Austin", "US", 30.267153, -97.743057, "USD", "99999"),
    ("Toronto", "CA", 43.653225, -79.383186, "CAD", "A9A 9A9"),
    ("Sao Paulo", "BR", -23.550520, -46.633308, "BRL", "99999-999"),
    ("Mexico City", "MX", 19.432608, -99.133209, "MXN", "99999"),
    ("Tokyo", "JP", 35.676192, 139.650311, "JPY", "999-9999"),
    ("Seoul", "KR", 37.566536, 126.977966, "KRW", "99999"),
    ("Mumbai", "IN", 19.075983, 72.877655, "INR", "999999"),
    ("Sydney", "AU", -33.868820, 151.209290, "AUD", "9999"),
    ("Lagos", "NG", 6.524379, 3.379206, "NGN", "999999"),
    ("Istanbul", "TR", 41.008240, 28.978359, "TRY", "99999"),
)

_DEVICES = (
    # os, os versions, models, share
    ("android", ("12", "13", "14", "15"), ("Pixel 8", "Galaxy S23", "Galaxy A54", "Xiaomi 13", "OnePlus 11"), 45),
    ("ios", ("16.7", "17.4", "17.5", "18.1"), ("iPhone 13", "iPhone 14", "iPhone 15 Pro", "iPad Air"), 35),
    ("web", ("chrome-126", "firefox-127", "safari-17"), ("browser",), 8),
    ("windows", ("10", "11"), ("desktop",), 7),
    ("macos", ("13.6", "14.5"), ("MacBook Air", "MacBook Pro", "iMac"), 5),
)
_APP_VERSIONS = ("8.9.12", "8.9.14", "8.9.20", "9.0.2", "9.0.4")

_ARTISTS = (
    "Nova Lights", "The Quiet Harbors", "Mara Vellum", "Kofi & The Tides", "Saint Odile", "Blue Meridian",
    "Ruins of June", "Lio Paz", "Hollow Orchard", "Tessa Rain", "Arcadia Drive", "DJ Kestrel", "Yumi Sato",
    "Los Faros", "Velvet Static", "Ola Brandt", "Moon Parade", "The Linden Trio", "Ravi Anand", "Echo Fields",
)
_QUERY_WORDS = (
    "acoustic", "live", "remix", "lyrics", "workout", "sleep", "focus", "road trip", "rainy day", "chill",
    "wedding", "throwback", "summer", "piano", "lofi", "dance", "unplugged", "best of", "new album", "tour",
)
_PLAYLIST_MOODS = ("road trip", "gym", "sunday morning", "wedding", "study", "late night", "breakup", "birthday")
_IAB = ("IAB1", "IAB1-6", "IAB2", "IAB3", "IAB9", "IAB9-30", "IAB17", "IAB18", "IAB19", "IAB20")
_CURRENCY_RATE = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "SEK": 11.4, "PLN": 4.3, "CAD": 1.47, "BRL": 5.6,
                  "MXN": 18.5, "JPY": 168.0, "KRW": 1480.0, "INR": 90.0, "AUD": 1.63, "NGN": 1600.0, "TRY": 35.0}
_PLAN_PRICE_EUR = {"free": 0, "individual": 10.99, "duo": 14.99, "family": 17.99, "student": 5.99}

_B62 = string.digits + string.ascii_letters


@dataclass(frozen=True)
class SyntheticUser:
    """One listener's stable personal data (all of it is PII except the derived fields)."""

    user_id: str
    email: str
    first_name: str
    display_name: str
    birth_date: date
    gender: str
    country: str
    city: str
    lat: float
    lon: float
    currency: str
    postcode: str
    phone: str
    ip: str
    device_id: str
    advertising_id: str
    os: str
    os_version: str
    model: str
    app_version: str
    plan: str
    queries: tuple[str, ...]


@dataclass(frozen=True)
class Track:
    track_id: str
    artist_id: str
    album_id: str
    artist: str
    duration_ms: int


def _b62(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_B62, k=n))


def _pattern(rng: random.Random, pattern: str) -> str:
    return "".join(
        str(rng.randint(0, 9)) if c == "9" else rng.choice(string.ascii_uppercase) if c == "A" else c for c in pattern
    )


def _ipv4(rng: random.Random) -> str:
    while True:
        a = rng.randint(11, 223)
        if a not in (127, 169, 172, 192, 10, 100):
            break
    # The last octet is never 0, so the full address never equals its truncated /24 form.
    return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    # A global-unicast address whose last five groups are non-zero (never its /48 form).
    head = [0x2A02, rng.randint(0x1000, 0xFFFF), rng.randint(0, 0xFFFF)]
    tail = [rng.randint(1, 0xFFFF) for _ in range(5)]
    return ":".join(f"{g:x}" for g in head + tail)


def _user(rng: random.Random, index: int) -> SyntheticUser:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, country, lat, lon, currency, postcode = rng.choice(_CITIES)
    os_name, versions, models, _ = rng.choices(_DEVICES, weights=[d[3] for d in _DEVICES])[0]
    birth = date(1960, 1, 1) + timedelta(days=rng.randint(0, 365 * 48))
    artist = rng.choice(_ARTISTS)
    queries = (
        f"{artist.lower()} {rng.choice(_QUERY_WORDS)}",
        f"{rng.choice(_QUERY_WORDS)} songs for {first.lower()}",
        f"{rng.choice(_ARTISTS).lower()} {birth.year % 100:02d} {rng.choice(_QUERY_WORDS)}",
    )
    return SyntheticUser(
        user_id=f"usr_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}",
        email=f"{first.lower()}.{last.lower()}{index}@{rng.choice(_MAIL_DOMAINS)}",
        first_name=first,
        display_name=f"{first} {last}",
        birth_date=birth,
        gender=rng.choices(("female", "male", "non_binary", "not_specified"), weights=(47, 47, 2, 4))[0],
        country=country,
        city=city,
        # Home coordinates with 6 decimals (~10 cm): precise location, the kind of PII
        # `encrypt` exists for.
        lat=round(lat + rng.uniform(-0.08, 0.08), 6),
        lon=round(lon + rng.uniform(-0.08, 0.08), 6),
        currency=currency,
        postcode=_pattern(rng, postcode),
        phone=f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}",
        ip=_ipv6(rng) if rng.random() < 0.2 else _ipv4(rng),
        device_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        advertising_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper(),
        os=os_name,
        os_version=rng.choice(versions),
        model=rng.choice(models),
        app_version=rng.choice(_APP_VERSIONS),
        plan=rng.choices(tuple(_PLAN_PRICE_EUR), weights=(55, 25, 6, 9, 5))[0],
        queries=queries,
    )


@dataclass(frozen=True)
class Population:
    """The fixed users and music catalog of one seed."""

    users: tuple[SyntheticUser, ...]
    tracks: tuple[Track, ...]
    weights: tuple[float, ...]
    """Cumulative activity of the users (a few heavy listeners, a long tail)."""

    @classmethod
    def create(cls, rng: random.Random, size: int) -> Population:
        if size < 2:
            raise PlatformError(f"the synthetic population needs at least 2 users, got {size}")
        users = tuple(_user(rng, i) for i in range(size))
        artists = [(f"art_{_b62(rng, 18)}", name) for name in _ARTISTS]
        tracks = []
        for artist_id, name in artists:
            for _ in range(rng.randint(1, 3)):
                album_id = f"alb_{_b62(rng, 18)}"
                for _ in range(rng.randint(4, 10)):
                    tracks.append(Track(f"trk_{_b62(rng, 18)}", artist_id, album_id, name, rng.randint(95_000, 420_000)))
        weights = tuple(itertools.accumulate(1.0 / (1 + i) ** 0.8 for i in range(size)))
        return cls(users, tuple(tracks), weights)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class GeneratedEvent:
    """One event as sent, and what must become of it."""

    seq: int
    """Number of the distinct event (its duplicates share it)."""
    event: Any
    """The JSON value posted to collect (a dict; the same object for a duplicate)."""
    event_type: str
    """The event type the event claims (for accounting per type)."""
    event_id: str | None
    kind: str
    """"valid" or one of INVALID_KINDS."""
    reason: str | None
    """Expected failed-event reason; None when the event must be loaded."""
    stage: str | None
    """Expected rejecting stage ("collect" | "anonymize"); None when loaded."""
    duplicate: bool
    pii: tuple[tuple[str, str], ...]
    """(dotted field path, value as text) of the event's fields that have a privacy policy."""

    @property
    def valid(self) -> bool:
        return self.reason is None


_ENUM_IN_PARENS = re.compile(r"\(([a-z0-9_]+(?:, ?[a-z0-9_]+)+)(?:,? (?:or|and) ([a-z0-9_]+))?\)")
_ENUM_SENTENCE = re.compile(r"^([a-z0-9_]+(?:, [a-z0-9_]+)*),? or ([a-z0-9_]+)\b")


@functools.lru_cache(maxsize=1024)
def description_choices(description: str) -> tuple[str, ...]:
    """The enumeration a field's description spells out, or () when there is none.

    `"Operating system (android, ios, web)."` → (android, ios, web);
    `"audio, display or video."` → (audio, display, video).
    """
    match = _ENUM_IN_PARENS.search(description)
    if match:
        values = [v.strip() for v in match.group(1).split(",")]
        if match.group(2):
            values.append(match.group(2))
        return tuple(values)
    match = _ENUM_SENTENCE.match(description.strip())
    if match:
        return (*(v.strip() for v in match.group(1).split(",")), match.group(2))
    return ()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _walk_pii(fields: Sequence[FieldDef], value: Any, out: list[tuple[str, str]], prefix: str = "") -> None:
    if not isinstance(value, dict):
        return
    for field in fields:
        item = value.get(field.name)
        if item is None:
            continue
        items = item if field.repeated and isinstance(item, list) else [item]
        for element in items:
            if field.fields:
                _walk_pii(field.fields, element, out, f"{prefix}{field.name}.")
            elif field.privacy != "none":
                out.append((f"{prefix}{field.name}", _text(element)))


def _text(value: Any) -> str:
    """A value as the warehouse would show it in clear (bool lower case, float repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Event:
    """Per-event state: values already chosen, for fields that depend on each other."""

    __slots__ = ("rng", "user", "now", "chosen", "track", "tracks")

    def __init__(self, rng: random.Random, user: SyntheticUser, now: datetime, tracks: tuple[Track, ...]) -> None:
        self.rng = rng
        self.user = user
        self.now = now
        self.chosen: dict[str, Any] = {}
        self.tracks = tracks
        self.track = rng.choice(tracks)


class EventGenerator:
    """Seeded synthetic events of a catalog's schemas (see the module docstring)."""

    def __init__(
        self,
        schemas: Iterable[EventSchema],
        *,
        seed: int = 7,
        users: int = 1000,
        invalid_share: float = 0.05,
        duplicate_share: float = 0.02,
        run_id: str = "run",
        now: datetime | None = None,
        optional_share: float = 0.8,
    ) -> None:
        self.schemas = tuple(schemas)
        if not self.schemas:
            raise PlatformError("the event generator needs at least one event schema")
        for name, share in (("invalid_share", invalid_share), ("duplicate_share", duplicate_share)):
            if not 0.0 <= share < 1.0:
                raise PlatformError(f"{name} must be at least 0 and below 1, got {share}")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", run_id):
            raise PlatformError(f"run_id {run_id!r} must be 1 to 40 letters, digits, '_', '.' or '-' (it prefixes event ids)")
        self.seed = seed
        self.run_id = run_id
        self.invalid_share = invalid_share
        self.duplicate_share = duplicate_share
        self.optional_share = optional_share
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.population = Population.create(random.Random(f"population-{seed}"), users)
        self._type_weights = list(itertools.accumulate(EVENT_TYPE_WEIGHTS.get(s.name, 3.0) for s in self.schemas))

    # ------------------------------------------------------------------ public

    def event_id(self, seq: int) -> str:
        """The id of distinct event `seq`: `<run_id>-<seq>` (prefix-searchable per run)."""
        return f"{self.run_id}-{seq:08d}"

    def generate(self, count: int) -> list[GeneratedEvent]:
        """`count` events to send, of which about `duplicate_share` are resends of earlier ones
        and about `invalid_share` of the distinct ones are invalid (evenly over the kinds)."""
        if count < 0:
            raise PlatformError(f"cannot generate a negative number of events ({count})")
        rng = random.Random(f"events-{self.seed}-{self.run_id}")
        duplicates = int(round(count * self.duplicate_share))
        distinct = count - duplicates
        invalid = int(round(distinct * self.invalid_share))
        kinds = ["valid"] * (distinct - invalid) + [INVALID_KINDS[i % len(INVALID_KINDS)] for i in range(invalid)]
        rng.shuffle(kinds)
        events = [self._one(rng, seq, kind) for seq, kind in enumerate(kinds)]
        if duplicates and events:
            keyed: list[tuple[float, int, GeneratedEvent]] = [(float(i), 0, e) for i, e in enumerate(events)]
            for n in range(duplicates):
                original = rng.randrange(len(events))
                position = rng.uniform(original + 0.5, len(events))
                copy = events[original]
                keyed.append((position, n + 1, _as_duplicate(copy)))
            keyed.sort(key=lambda item: (item[0], item[1]))
            events = [item[2] for item in keyed]
        return events

    # ------------------------------------------------------------------ one event

    def _one(self, rng: random.Random, seq: int, kind: str) -> GeneratedEvent:
        schema = rng.choices(self.schemas, cum_weights=self._type_weights)[0]
        population = self.population
        user = rng.choices(population.users, cum_weights=population.weights)[0]
        # Events happened during the last hour (well within every allowed lateness).
        event_time = self.now - timedelta(seconds=rng.uniform(1.0, 3600.0))
        state = _Event(rng, user, event_time, population.tracks)
        payload = self._record(schema.fields, state, "")
        pii: list[tuple[str, str]] = []
        _walk_pii(schema.fields, payload, pii)
        event: dict[str, Any] = {
            "event_id": self.event_id(seq),
            "event_type": schema.name,
            "schema_version": schema.version,
            "event_time": _iso(event_time),
            "payload": payload,
        }
        event_type = schema.name
        if kind != "valid":
            event_type = self._break(rng, kind, schema, event)
        reason, stage = EXPECTED.get(kind, (None, None))
        return GeneratedEvent(
            seq=seq,
            event=event,
            event_type=event_type,
            event_id=event.get("event_id"),
            kind=kind,
            reason=reason,
            stage=stage,
            duplicate=False,
            pii=tuple(pii),
        )

    def _break(self, rng: random.Random, kind: str, schema: EventSchema, event: dict[str, Any]) -> str:
        """Make `event` invalid in the way `kind` says; return the event type it now claims."""
        payload = event["payload"]
        if kind == "wrong_type":
            field = _pick(rng, [f for f in schema.fields if not f.fields and not f.repeated and f.privacy == "none"])
            if field is None:  # every scalar is PII: break the structure instead
                payload["__unexpected__"] = 1
            else:
                payload[field.name] = _wrong_value(field, payload.get(field.name))
        elif kind == "missing_required":
            required = [f for f in schema.fields if f.required and f.privacy != "user_id"] or [
                f for f in schema.fields if f.required
            ]
            if required:
                payload.pop(rng.choice(required).name, None)
            else:  # nothing is required: an unknown field is the schema violation
                payload["__unexpected__"] = 1
        elif kind == "unknown_event_type":
            event["event_type"] = UNKNOWN_EVENT_TYPE
            return UNKNOWN_EVENT_TYPE
        elif kind == "missing_event_id":
            del event["event_id"]
        elif kind == "bad_event_time":
            event["event_time"] = rng.choice(("yesterday", "2024-13-45T25:61:00Z", "1714564800", "2024-05-01 12:00"))
        elif kind == "clock_skew":
            event["event_time"] = _iso(self.now + CLOCK_SKEW + timedelta(seconds=rng.uniform(0, 600)))
        elif kind == "too_late":
            event["event_time"] = _iso(self.now - timedelta(days=schema.retention_days) - TOO_LATE_MARGIN)
        elif kind == "oversize":
            field = _pick(rng, [f for f in schema.fields if f.type == "STRING" and not f.repeated and f.privacy == "none"])
            name = field.name if field is not None else schema.fields[0].name
            payload[name] = "x" * OVERSIZE_BYTES
        else:
            raise PlatformError(f"unknown invalid kind {kind!r}; use one of {', '.join(INVALID_KINDS)}")
        return schema.name

    def _record(self, fields: Sequence[FieldDef], state: _Event, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        rng = state.rng
        for field in fields:
            path = f"{prefix}{field.name}"
            if not field.required and rng.random() > self.optional_share:
                continue
            if field.repeated:
                count = rng.randint(1, 6) if field.type != "RECORD" else rng.randint(3, 10)
                value: Any = [self._value(field, state, path, i) for i in range(count)]
            else:
                value = self._value(field, state, path, 0)
            if value is None:
                continue
            out[field.name] = value
            state.chosen[path] = value
        return out

    def _value(self, field: FieldDef, state: _Event, path: str, index: int) -> Any:
        if field.type == "RECORD":
            record = self._record(field.fields, state, f"{path}.")
            if field.repeated and "position" in {f.name for f in field.fields}:
                record["position"] = index + 1
            return record
        if field.privacy == "user_id":
            return state.user.user_id
        special = _special(field, state, path)
        if special is not _NOTHING:
            return special
        return _by_type(field, state)


def _as_duplicate(event: GeneratedEvent) -> GeneratedEvent:
    return GeneratedEvent(
        seq=event.seq, event=event.event, event_type=event.event_type, event_id=event.event_id, kind=event.kind,
        reason=event.reason, stage=event.stage, duplicate=True, pii=event.pii,
    )


def _pick(rng: random.Random, fields: list[FieldDef]) -> FieldDef | None:
    return rng.choice(fields) if fields else None


def _wrong_value(field: FieldDef, current: Any) -> Any:
    """A JSON value of the wrong type for `field` (a number for text, text for a number)."""
    if field.type in ("STRING", "TIMESTAMP", "DATE"):
        return 12345
    if field.type == "BOOL":
        return "yes"
    return "a lot"  # INT64, FLOAT64


_NOTHING = object()


_USER_STRINGS = {
    "email": "email", "display_name": "display_name", "phone_number": "phone", "phone": "phone",
    "billing_postcode": "postcode", "postcode": "postcode", "postal_code": "postcode", "ip": "ip",
    "advertising_id": "advertising_id", "os": "os", "os_version": "os_version", "model": "model",
    "app_version": "app_version", "country": "country", "city": "city", "gender": "gender",
    "currency": "currency",
}
"""STRING field name → the population user's attribute it takes (stable per user)."""


def _special(field: FieldDef, state: _Event, path: str) -> Any:
    """A value chosen from the field's name (and the event's other values), or _NOTHING."""
    name = field.name
    user, rng, track, chosen = state.user, state.rng, state.track, state.chosen
    leaf_parent = path.rsplit(".", 2)[-2] if path.count(".") >= 1 else ""
    if field.type == "STRING":
        if name in _USER_STRINGS:
            return getattr(user, _USER_STRINGS[name])
        if name == "card_last4":
            return f"{rng.randint(0, 9999):04d}"
        if name == "id" and leaf_parent == "device":
            return user.device_id
        if name == "query":
            return rng.choice(user.queries)
        if name == "playlist_name":
            return f"{user.first_name}'s {rng.choice(_PLAYLIST_MOODS)} mix"
        if name == "track_id":
            return track.track_id
        if name == "artist_id":
            return track.artist_id
        if name == "album_id":
            return track.album_id
        if name in ("track_ids", "item_id"):
            return rng.choice(state.tracks).track_id
        if name == "referrer_user_id":
            return f"usr_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}"
        if name in ("new_plan", "previous_plan"):
            plans = tuple(_PLAN_PRICE_EUR)
            if name == "new_plan":
                return user.plan if "previous_plan" not in chosen else rng.choice([p for p in plans if p != chosen["previous_plan"]])
            return rng.choice(plans)
        if name == "categories":
            return rng.choice(_IAB)
        if name.endswith("_id"):
            stem = name[:-3]
            return f"{stem[:3]}_{_b62(rng, 16)}"
        choices = description_choices(field.description)
        if choices:
            return rng.choice(choices)
        return f"{name}-{_b62(rng, 8)}"
    if field.type == "INT64":
        if name == "track_duration_ms":
            return track.duration_ms
        if name == "ms_played":
            return track.duration_ms if rng.random() < 0.55 else rng.randint(1_000, track.duration_ms)
        if name == "query_length":
            return len(chosen.get(path.rsplit(".", 1)[0] + ".query" if "." in path else "query", "") or "")
        if name == "clicked_position":
            results = chosen.get("results")
            return rng.randint(1, len(results)) if results else None
        if name == "birth_year":
            return user.birth_date.year
        if name == "revenue_micros":
            return rng.randint(200, 25_000)
        if name == "price_micros":
            price = _PLAN_PRICE_EUR.get(chosen.get("new_plan", user.plan), 10.99) * _CURRENCY_RATE.get(user.currency, 1.0)
            return int(round(price, 2) * 1_000_000)
        if name == "latency_ms":
            return int(rng.lognormvariate(5.0, 0.6))
        if name.endswith("_ms"):
            return rng.randint(5_000, 60_000)
        if name.endswith("_count") or name.endswith("_count_after"):
            return rng.randint(1, 300)
        return rng.randint(0, 1000)
    if field.type == "FLOAT64":
        if name in ("lat", "latitude"):
            return round(user.lat + rng.uniform(-0.01, 0.01), 6)
        if name in ("lon", "lng", "longitude"):
            return round(user.lon + rng.uniform(-0.01, 0.01), 6)
        if name == "accuracy_m":
            return round(rng.uniform(3.0, 80.0), 1)
        if name == "score":
            return round(rng.uniform(0.05, 0.99), 4)
        return round(rng.uniform(0.0, 100.0), 3)
    if field.type == "BOOL":
        if name == "skipped":
            played = chosen.get("ms_played")
            return played is not None and played < 30_000
        if name == "marketing_opt_in":
            return rng.random() < 0.35
        return rng.random() < 0.3
    if field.type == "DATE":
        if "birth" in name:
            return user.birth_date.isoformat()
        return (state.now.date() - timedelta(days=rng.randint(0, 30))).isoformat()
    if field.type == "TIMESTAMP":
        return _iso(state.now - timedelta(seconds=rng.uniform(0, 600)))
    return _NOTHING


def _by_type(field: FieldDef, state: _Event) -> Any:
    rng = state.rng
    kind = field.type
    if kind == "STRING":
        return f"{field.name}-{_b62(rng, 8)}"
    if kind == "INT64":
        return rng.randint(0, 1000)
    if kind == "FLOAT64":
        return round(rng.uniform(0, 1000), 3)
    if kind == "BOOL":
        return rng.random() < 0.5
    if kind == "DATE":
        return state.now.date().isoformat()
    return _iso(state.now)


def pii_values(events: Iterable[GeneratedEvent]) -> set[str]:
    """Every PII value the events carried, as text (what must never be found in clear)."""
    return {value for event in events for _, value in event.pii if value}


class PiiIndex:
    """Finds the events' PII values in warehouse cells.

    Values of `MIN_PII_SUBSTRING` characters or more are searched everywhere, as substrings
    of text and of bytes. Shorter ones (a card's last four digits, a postcode) would match
    unrelated cells by chance (a message id "1275"), so they are looked for only in the
    column of their own field, as whole cells: that is where a field left in clear would be.
    """

    def __init__(self, events: Iterable[GeneratedEvent]) -> None:
        self.long: set[str] = set()
        self.short: dict[str, set[str]] = {}
        for event in events:
            for path, value in event.pii:
                if len(value) >= MIN_PII_SUBSTRING:
                    self.long.add(value)
                elif value:
                    self.short.setdefault(path, set()).add(value)
        # Substring search by the first MIN_PII_SUBSTRING characters: one dict lookup per
        # position of a cell instead of one scan of the cell per value (thousands of them).
        self._text: dict[str, list[str]] = {}
        self._bytes: dict[bytes, list[bytes]] = {}
        for value in sorted(self.long):
            self._text.setdefault(value[:MIN_PII_SUBSTRING], []).append(value)
            raw = value.encode()
            self._bytes.setdefault(raw[:MIN_PII_SUBSTRING], []).append(raw)

    def __len__(self) -> int:
        return len(self.long) + sum(len(v) for v in self.short.values())

    def in_text(self, column: str, text: str) -> str | None:
        """The PII value `text` (a cell of column path `column`) holds in clear, or None."""
        if text in self.long or text in self.short.get(column, ()):
            return text
        return _search(text, self._text)

    def in_bytes(self, data: bytes) -> str | None:
        """The (long) PII value `data` holds in clear, or None."""
        found = _search(data, self._bytes)
        return found.decode() if found is not None else None


def _search(haystack: Any, by_prefix: dict[Any, list[Any]]) -> Any:
    size = MIN_PII_SUBSTRING
    for i in range(len(haystack) - size + 1):
        candidates = by_prefix.get(haystack[i : i + size])
        if candidates:
            for value in candidates:
                if haystack.startswith(value, i):
                    return value
    return None
