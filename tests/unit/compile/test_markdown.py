"""Event schema → Markdown catalog page: golden pages plus the facts every page must state."""

from __future__ import annotations

import pytest

from dataplatform.compile.markdown import schema_markdown
from dataplatform.definitions.models import EventSchema
from tests.fixtures.compile.schemas import NAMES, load
from tests.golden import assert_golden


@pytest.mark.parametrize("name", NAMES)
def test_page_matches_golden(name: str) -> None:
    assert_golden(f"compile/markdown/{name}.md", schema_markdown(load(name)))


@pytest.mark.parametrize("name", NAMES)
def test_every_field_path_has_a_row(name: str) -> None:
    schema = load(name)
    page = schema_markdown(schema)
    for path, field in schema.walk():
        assert f"| `{path}` | {field.type} |" in page


def test_page_states_ownership_retention_and_places() -> None:
    page = schema_markdown(load("order_placed"))
    assert page.startswith("# order_placed (v3)\n")
    for fact in (
        "| Owner | `checkout` |",
        "| Domain | `commerce` |",
        "| Retention | 2555 days (partition expiration) |",
        "| Partitioning | DAY on `event_time` |",
        "| Clustering | `country`, `order_id` |",
        "| Allowed lateness | 2h |",
        "| Readers | `group:finance@example.com` |",
        "`events.order_placed_v3`",
        "`events.order_placed_v3_dedup`",
        "`order_placed_v3-raw`",
        "clean topic: `order_placed_v3`",
    ):
        assert fact in page, fact


def test_privacy_shows_what_the_warehouse_holds() -> None:
    page = schema_markdown(load("order_placed"))
    assert "| `customer.user_id` | STRING | REQUIRED | pseudonymized | `customer.user_pseudonym` STRING |" in page
    assert "| `customer.phone` | STRING | NULLABLE | encrypted (user key) | `customer.phone` BYTES |" in page
    assert "| `customer.loyalty_number` | INT64 | REQUIRED | keyed hash | `customer.loyalty_number` STRING |" in page
    track = schema_markdown(load("track_played"))
    assert "| `session_token` | STRING | NULLABLE | dropped | — |" in track
    assert "| `debug` | RECORD | NULLABLE | dropped (no field is stored) | — |" in track
    assert "## Privacy" in track


def test_page_without_pii_has_no_privacy_legend() -> None:
    page = schema_markdown(load("app_started"))
    assert "## Privacy" not in page
    assert "| Readers | dataset readers only |" in page


def test_descriptions_cannot_break_the_table() -> None:
    schema = EventSchema.model_validate(
        {
            "name": "x", "version": 1, "owner": "o", "domain": "d", "description": "d", "retention_days": 1,
            "fields": [{"name": "a", "type": "STRING", "description": "one | two\nthree"}],
        }
    )
    assert "| `a` | STRING | NULLABLE |  | `a` STRING | one \\| two three |" in schema_markdown(schema)
