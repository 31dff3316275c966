"""Deterministic resource names that fit each service's rules."""

from __future__ import annotations

import re

from infra import names


def test_function_names_are_dns_labels_within_cloud_runs_limit():
    assert names.function_name("collect") == "dp-collect"
    assert names.function_name("anonymize", "track_played_v1") == "dp-anonymize-track-played-v1"
    long_a = names.function_name("anonymize", "a" * 60 + "_v1")
    long_b = names.function_name("anonymize", "a" * 60 + "_v2")
    for name in (long_a, long_b):
        assert len(name) <= names.MAX_FUNCTION_NAME
        assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name)
    assert long_a != long_b  # the hash suffix keeps truncated names apart
    assert names.function_name("anonymize", "a" * 60 + "_v1") == long_a  # and is stable


def test_service_account_ids_fit_6_to_30_characters():
    assert names.endpoint_service_account_id("daily_track_plays") == "dp-q-daily-track-plays"
    long = names.endpoint_service_account_id("a_very_long_endpoint_name_for_the_finance_team")
    assert 6 <= len(long) <= 30 and re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", long)
    assert len(names.service_account_id("dp")) >= 6


def test_label_values_are_lowercase_and_short():
    assert names.label_value("Team Playback!") == "team-playback"
    assert len(names.label_value("x" * 100)) == 63
