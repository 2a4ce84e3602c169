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
    Text(50, 8, strip=False),
    Text(50, 8, strip=False, blank=False),
    Text(50, 1, visible=True),
    Text(50, 3, visible=True),
]
# Whitespace (ASCII and not), NUL, "@", letters, a lone surrogate, zero-width and format characters
# (BMP and astral), bidirectional controls: every class the rules tell apart.
CHARACTERS = st.sampled_from(
    [*TRIMMED, "\x00", "@", "a", "é", "\u00a0", "\u2028", "\ud800", "\u200b", "\u00ad", "\U000e0041"]
    + ["\u202e", "\u2066", "\u200f", "\u061c", "\U0001f600", "\u0301"]
)


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


EMAIL = Text(254, 3, email=True)
# Pieces of addresses good and bad: atoms, dots and hyphens where labels may not have them, the
# Punycode prefix, special-use names, what a header cannot carry, display-name brackets, Unicode.
ADDRESS_PIECES = st.sampled_from(
    ["a", "Bc", "7", "-", "--", ".", "@", "@", "xn--", "+", "_", "{", " ", "\r\n", "\t", "\x00",
     "org", "test", "local", "<", ">", '"', ",", "é", "ü", "\u202e", "\u00a0", "\u2028"]
)  # fmt: skip


@hypothesis.given(value=st.lists(ADDRESS_PIECES, max_size=10).map("".join))
@hypothesis.example(value="ann@example.org")
@hypothesis.example(value=" Ann@Example.ORG\r\n")
@hypothesis.example(value="crlf@example.org\r\nBcc: x@evil.example")
@hypothesis.example(value="ann@x.test")
@hypothesis.example(value="ann@bücher.example")
@hypothesis.example(value="ann@xn--bcher-kva.example")
@hypothesis.example(value="ann@xn--zz.example")
@hypothesis.example(value="é@example.org")
@hypothesis.settings(max_examples=2000, deadline=None, database=None)
def test_the_email_pattern_says_what_the_library_accepts(value):
    """Every match of the document's pattern is accepted; every ASCII address accepted matches it.

    Two kinds the server takes are not in the pattern (a regex cannot check IDNA): a domain in
    Unicode and one in Punycode (``xn--``).  Either way what is stored is ASCII.
    """
    documented = re.fullmatch(EMAIL.pattern(), value) is not None
    if documented:
        assert accepted(EMAIL, value), value
    if not accepted(EMAIL, value):
        return
    stored = EMAIL.check(value)
    assert stored.isascii() and stored == stored.strip(TRIMMED), (value, stored)
    if value.isascii() and "xn--" not in value.lower():
        assert documented, value


# The document's maxLength (254, which the library holds to as well) goes with its pattern.
@hypothesis.given(
    value=st.from_regex(EMAIL.pattern(), fullmatch=True).filter(lambda v: len(v) <= EMAIL.max_len)
)
@hypothesis.settings(max_examples=300, deadline=None, database=None)
def test_whatever_the_email_pattern_admits_is_accepted(value):
    assert accepted(EMAIL, value), value


def test_a_unicode_domain_is_stored_in_ascii_and_a_unicode_local_part_refused():
    limits = Limits()
    body = b'{"email": " Ann@B\xc3\xbccher.Example ", "name": "Ann", "password": "12345678"}'
    assert read_body(limits, "Register", body).email == "Ann@xn--bcher-kva.example"
    with pytest.raises(ApiError) as refused:
        read_body(
            limits,
            "Register",
            '{"email": "ülrich@example.org", "name": "U", "password": "12345678"}'.encode(),
        )
    assert set(refused.value.fields) == {"email"}
    assert refused.value.fields["email"].startswith("must be an email address: ")


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
