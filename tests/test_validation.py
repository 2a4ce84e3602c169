"""The request-body declaration: its document patterns say exactly what its checks accept."""

from __future__ import annotations

import dataclasses
import re

import hypothesis
import pydantic_core
import pytest
from hypothesis import strategies as st

from tornado_petitions.errors import ApiError
from tornado_petitions.settings import Limits
from tornado_petitions.validation import TRIMMED, Text, read_body, request_schemas

RULES = [
    Text(50),
    Text(50, 1),
    Text(50, 3),
    Text(50, 7),
    Text(50, 3, email=True),
    Text(50, 8, strip=False),
    Text(50, 8, strip=False, blank=False),
]
# Whitespace (ASCII and not), NUL, "@", letters and a lone surrogate: every class the rules tell apart.
CHARACTERS = st.sampled_from([*TRIMMED, "\x00", "@", "a", "é", "\u00a0", "\u2028", "\ud800"])


def accepted(rule: Text, value: str) -> bool:
    try:
        rule.check(value)
    except pydantic_core.PydanticCustomError:
        return False
    return True


@pytest.mark.parametrize("rule", RULES, ids=repr)
@hypothesis.given(value=st.text(CHARACTERS, max_size=12))
@hypothesis.settings(max_examples=400, deadline=None, database=None)
def test_each_rules_pattern_accepts_exactly_what_its_check_accepts(rule, value):
    documented = re.fullmatch(rule.pattern(), value) is not None
    if not rule.strip:
        documented = documented and len(value) >= rule.min_len
    if "\ud800" in value:
        return  # refused before the rule by the string type itself (see below); JSON cannot carry it to ECMA
    assert documented == accepted(rule, value), (rule, value)


def test_a_lone_surrogate_is_refused_as_text():
    with pytest.raises(ApiError) as refused:
        read_body(Limits(), "NewPetition", b'{"title": "Lamp \\ud800", "description": "ok"}')
    assert refused.value.fields == {"title": "must be UTF-8 text without NUL characters"}


def test_every_bad_field_is_named_with_a_message_saying_what_to_send():
    raw = b'{"title": " a ", "description": "  ", "category": 5, "location": "' + b"x" * 101 + b'"}'
    with pytest.raises(ApiError) as refused:
        read_body(Limits(), "NewPetition", raw)
    assert refused.value.status == 422
    assert refused.value.fields == {
        "title": "must be at least 3 characters",
        "description": "must not be blank",
        "category": "must be a string",
        "location": "must be at most 100 characters",
    }


def test_limits_from_the_settings_reach_both_the_check_and_the_document():
    limits = dataclasses.replace(Limits(), title_min=5, title_max=9)
    schema = request_schemas(limits)["NewPetition"]["properties"]["title"]
    assert schema["maxLength"] == 9
    assert re.fullmatch(schema["pattern"], " abcde ") and not re.fullmatch(schema["pattern"], " abcd ")
    with pytest.raises(ApiError) as refused:
        read_body(limits, "NewPetition", b'{"title": "abcd", "description": "ok"}')
    assert refused.value.fields == {"title": "must be at least 5 characters"}
    assert (
        read_body(limits, "NewPetition", b'{"title": "  abcde\\u000b", "description": "ok"}').title == "abcde"
    )
