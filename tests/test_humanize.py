"""jsonschema errors -> sentences a non-programmer can act on."""

from __future__ import annotations

import pytest

from runner.botfile import humanize
from runner.botfile.registry import templated

OBJ = {
    "type": "object", "additionalProperties": False, "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "flag": {"type": "boolean"},
        "level": {"enum": ["debug", "info", "warning"]},
        "method": {"enum": ["GET", "POST"]},
        "code": {"type": "string", "pattern": "^[0-9]+$", "description": "digits only"},
        "name": {"type": "string", "minLength": 1, "maxLength": 3},
        "items": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["role"],
            "properties": {"role": {"enum": ["user", "assistant"]}}}},
        "to": {"anyOf": [{"type": "string"}, {"type": "array"}]},
        "seconds": templated({"type": "number"}),
        "regex": {"type": "string", "format": "regex"},
        "version": {"const": 1},
    },
}


def messages(instance, where="action 'x'", **kw):
    return [(path, message, hint, key) for path, message, hint, key in humanize.validate(OBJ, instance, where, **kw)]


def only(instance, **kw):
    found = messages(instance, **kw)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("instance, path, message", [
    ({}, (), "action 'x': missing required key 'text'"),
    ({"text": 5}, ("text",), "action 'x' field 'text': expected text, got 5"),
    ({"text": "a", "count": "2"}, ("count",), "action 'x' field 'count': expected a whole number, got '2'"),
    ({"text": "a", "count": 0}, ("count",), "action 'x' field 'count': must be at least 1, got 0"),
    ({"text": "a", "count": 10}, ("count",), "action 'x' field 'count': must be at most 9, got 10"),
    ({"text": "a", "ratio": 0}, ("ratio",), "action 'x' field 'ratio': must be more than 0, got 0"),
    ({"text": "a", "ratio": 1}, ("ratio",), "action 'x' field 'ratio': must be less than 1, got 1"),
    ({"text": "a", "flag": "yes"}, ("flag",), "action 'x' field 'flag': expected true or false, got 'yes'"),
    ({"text": "a", "level": "warn"}, ("level",),
     "action 'x' field 'level': 'warn' is not one of: debug, info, warning (did you mean 'warning'?)"),
    ({"text": "a", "method": "post"}, ("method",),
     "action 'x' field 'method': 'post' is not one of: GET, POST (did you mean 'POST'?)"),
    ({"text": "a", "code": "12a"}, ("code",), "action 'x' field 'code': '12a' does not have the expected form"),
    ({"text": "a", "name": ""}, ("name",), "action 'x' field 'name': must not be empty"),
    ({"text": "a", "name": "abcd"}, ("name",), "action 'x' field 'name': must be at most 3 characters long"),
    ({"text": "a", "items": []}, ("items",), "action 'x' field 'items': must not be empty"),
    ({"text": "a", "items": [{"role": "usr"}]}, ("items", 0, "role"),
     "action 'x' field 'items[0].role': 'usr' is not one of: user, assistant (did you mean 'user'?)"),
    ({"text": "a", "items": [{}]}, ("items", 0), "action 'x' field 'items[0]': missing required key 'role'"),
    ({"text": "a", "to": 5}, ("to",), "action 'x' field 'to': expected text or a list, got 5"),
    ({"text": "a", "seconds": "2s"}, ("seconds",), "action 'x' field 'seconds': expected a number, got '2s'"),
    ({"text": "a", "regex": "(a"}, ("regex",), "action 'x' field 'regex': '(a' is not a valid regular expression"),
    ({"text": "a", "version": 2}, ("version",), "action 'x' field 'version': must be 1"),
])
def test_messages(instance, path, message):
    got_path, got_message, _, at_key = only(instance)
    assert (got_path, got_message, at_key) == (path, message, False)


def test_unknown_keys_point_at_the_key_with_did_you_mean():
    assert only({"text": "a", "levle": "info"}) == (
        ("levle",), "unknown key 'levle' in action 'x' (did you mean 'level'?)", None, True)
    path, message, hint, at_key = only({"text": "a", "zzz": 1})
    assert message == "unknown key 'zzz' in action 'x'" and hint.startswith("allowed keys: code, count, flag")
    assert only({"text": "a", "items": [{"role": "user", "rloe": 1}]})[1] == \
        "unknown key 'rloe' in 'items[0]' of action 'x' (did you mean 'role'?)"


def test_a_misspelt_required_key_is_reported_once():
    assert messages({"txet": "hello"}) == [
        (("txet",), "unknown key 'txet' in action 'x' (did you mean 'text'?)", None, True)]


def test_sections_use_dotted_names():
    assert only({"text": 1}, where="session")[1] == "session.text: expected text, got 1"
    assert only({"text": "a", "items": [{"role": 1}]}, where="session")[1].startswith("session.items[0].role: ")


def test_hidden_shorthand_key_is_not_named():
    assert only({"text": 5}, hide=("text",))[1] == "action 'x': expected text, got 5"


def test_list_bodies_are_numbered_from_one():
    schema = {"type": "array", "items": {"type": "object", "required": ["when"]}}
    (found,) = humanize.validate(schema, [{"when": 1}, {}], "action 'choose'")
    assert found[:2] == ((1,), "action 'choose' entry 2: missing required key 'when'")


@pytest.mark.parametrize("field, value", [("seconds", "{{ vars.pause }}"), ("count", "{{ 3 }}"), ("flag", "{{ x }}"),
                                          ("level", "{{ x }}"), ("code", "{% if x %}1{% endif %}")])
def test_templates_are_checked_when_rendered(field, value):
    assert messages({"text": "a", field: value}) == []


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (None, "nothing"), ("hi", "'hi'"), ({}, "a mapping"), ([], "a list"),
    (1.5, "1.5"), ("x" * 100, "'" + "x" * 57 + "...'"),
])
def test_describe(value, text):
    assert humanize.describe(value) == text


def test_type_hints():
    assert "without units" in only({"text": "a", "count": "3 times"})[2]
    assert "true or false" in only({"text": "a", "flag": "no"})[2]
    assert only({"text": "a", "code": "x"})[2] == "digits only"


def test_errors_come_in_document_order_for_several_problems():
    found = messages({"text": 1, "count": 0, "flag": "x", "bogus": 1})
    assert {f[0] for f in found} == {("text",), ("count",), ("flag",), ("bogus",)}


@pytest.mark.parametrize("instance, hint", [
    ({"text": 5}, 'put it in quotes to make it text: text: "5"'),
    ({"text": 1.5}, 'put it in quotes to make it text: text: "1.5"'),
    ({"text": True}, 'put it in quotes to make it text: text: "true"'),
    ({"text": "a", "to": 7}, 'put it in quotes to make it text: to: "7"'),   # anyOf text or a list
    ({"text": "a", "to": False}, 'put it in quotes to make it text: to: "false"'),
])
def test_a_number_or_boolean_where_text_belongs_gets_a_quote_hint(instance, hint):
    assert only(instance)[2] == hint


def test_the_quote_hint_names_the_action_for_a_shorthand_value():
    (_, message, hint, _), = messages({"text": 5}, where="action 'say'", hide=("text",))
    assert message == "action 'say': expected text, got 5"
    assert hint == 'put it in quotes to make it text: say: "5"'


def test_no_quote_hint_where_it_would_not_help():
    assert only({"text": [1]})[2] is None  # a list is not a number typed by mistake
    assert only({"text": "a", "count": "2"})[2] != humanize.quote_hint("count", "2")
    assert humanize.quote_hint("x", None) is None and humanize.quote_hint(None, 3) == \
        'put it in quotes to make it text: "3"'
