"""Checking request bodies field by field, so a 422 names every bad field at once."""

from __future__ import annotations

from typing import Any

from .errors import ApiError

# What "trimmed" means, exactly: ASCII whitespace only, so the OpenAPI
# patterns (ECMA regexes, whose \s differs from Python's str.strip) can say
# the same thing.
TRIMMED = " \t\n\r\f\v"


class FieldReader:
    """Reads typed fields from a JSON object, collecting every problem before failing."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "the request body must be a JSON object")
        self.body = body
        self.errors: dict[str, str] = {}

    def text(
        self,
        name: str,
        *,
        max_len: int,
        min_len: int = 0,
        required: bool = True,
        strip: bool = True,
    ) -> str | None:
        """A string field of at most ``max_len`` characters as sent and ``min_len`` once trimmed.

        None when optional and absent (or blank).
        """
        value = self.body.get(name)
        if value is None:
            if required:
                self.errors[name] = "is required"
            return None
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return None
        if len(value) > max_len:
            self.errors[name] = f"must be at most {max_len} characters"
            return None
        if strip:
            value = value.strip(TRIMMED)
        if "\x00" in value or not _is_utf8(value):
            self.errors[name] = "must be UTF-8 text without NUL characters"
            return None
        if len(value) < min_len:
            self.errors[name] = f"must be at least {min_len} characters"
            return None
        if not value and not required:
            return None
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int = 0) -> int | None:
        """An integer field (booleans refused) at or above ``minimum``."""
        value = self.body.get(name)
        if value is None:
            if required:
                self.errors[name] = "is required"
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.errors[name] = f"must be an integer >= {minimum}"
            return None
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        """A required string field that must be one of ``choices``."""
        value = self.body.get(name)
        if not isinstance(value, str) or value not in choices:
            self.errors[name] = "must be one of " + ", ".join(choices)
            return None
        return value

    def done(self) -> None:
        """Raise one 422 naming every invalid field, if any."""
        if self.errors:
            names = ", ".join(sorted(self.errors))
            raise ApiError(422, "invalid_fields", f"invalid fields: {names}", fields=self.errors)


def _is_utf8(value: str) -> bool:
    """False for strings holding lone surrogates (JSON "\\ud800"), which no database can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
