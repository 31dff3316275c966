"""YAML with a line for every key and list item, and repeated keys caught."""

from __future__ import annotations

import pytest

from dataplatform.definitions.yaml_lines import DuplicateKey, YamlSyntaxError, line_of, load_with_lines

TEXT = """\
# a comment
name: x
fields:
  - name: a
    type: STRING
  - name: b
    fields:
      - name: c
"""


def test_every_key_and_item_has_its_line():
    data, lines = load_with_lines(TEXT)
    assert data["fields"][1]["fields"][0] == {"name": "c"}
    assert lines[("name",)] == 2
    assert lines[("fields", 0)] == 4
    assert lines[("fields", 0, "type")] == 5
    assert lines[("fields", 1, "fields", 0, "name")] == 8


def test_missing_key_falls_back_to_its_parent():
    _, lines = load_with_lines(TEXT)
    assert line_of(lines, ("fields", 1, "type")) == 6
    assert line_of(lines, ("nothing",)) == 1


def test_repeated_key_is_recorded_and_the_last_value_wins():
    found: list[DuplicateKey] = []
    data, lines = load_with_lines("a: 1\nb:\n  c: 2\nb: 3\n", found)
    assert data == {"a": 1, "b": 3}
    assert found == [DuplicateKey(("b",), 4, 2)]
    assert ("b", "c") not in lines


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: [1\nb: 2\n", 2), ("a: 1\n b: 2\n", 2), ("? [1, 2]\n: x\n", 1), ("a: !!python/object:os.system x\n", 1)],
)
def test_syntax_errors_have_a_line(text, line):
    with pytest.raises(YamlSyntaxError) as info:
        load_with_lines(text)
    assert info.value.line == line
    assert str(info.value).startswith("invalid YAML: ")


def test_empty_document():
    assert load_with_lines("") == (None, {(): 1})
