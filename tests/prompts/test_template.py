"""{{variable}} templates: what they name and how they render (pure functions)."""

from __future__ import annotations

import pytest

from sightline.prompts import MissingVariables, render, validate_template, variables_of


def test_variables_in_order_of_first_appearance_across_messages() -> None:
    t = [{"role": "system", "content": "{{ b }} and {{a}}"}, {"role": "user", "content": "{{b}}"}]
    assert variables_of(t) == ["b", "a"]
    assert variables_of("no placeholders, {single} braces") == []


def test_render_fills_text_and_messages_and_keeps_other_keys() -> None:
    assert render("Hi {{ name }}, {{name}}!", {"name": "Ana", "unused": 1}) == "Hi Ana, Ana!"
    msgs = [{"role": "user", "content": "{{q}}", "name": "alice"}]
    assert render(msgs, {"q": 42}) == [{"role": "user", "content": "42", "name": "alice"}]
    assert msgs[0]["content"] == "{{q}}"  # the template itself is untouched


def test_values_are_inserted_as_is_never_expanded_again() -> None:
    assert render("{{a}} {{b}}", {"a": "{{b}}", "b": "x"}) == "{{b}} x"


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(MissingVariables) as e:
        render("{{a}} {{b}} {{c}}", {"b": 1})
    assert e.value.missing == ["a", "c"] and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "bad",
    ["", [], [{"role": "user"}], [{"role": "robot", "content": "x"}],
     [{"role": "user", "content": 3}], [{"role": "user", "content": "x", "extra": 1}], 7,
     [{"role": "user", "content": "x", "name": 5}],
     [{"role": "user", "content": "x", "name": None}],
     [{"role": "user", "content": "x", "name": {"nested": ["x" * 10]}}]],
)  # fmt: skip
def test_invalid_templates_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        validate_template(bad)
