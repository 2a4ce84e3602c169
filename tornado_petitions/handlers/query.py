"""Reading a list route's query string: each parameter at most once, none unknown, 422 naming every bad one."""

from __future__ import annotations

from collections.abc import Sequence

import tornado.web

from ..errors import ApiError

MAX_ID = 10**15


class QueryReader:
    """Collects the errors of every parameter read, then ``check()`` raises them as one 422."""

    def __init__(self, handler: tornado.web.RequestHandler) -> None:
        self.handler = handler
        self.errors: dict[str, str] = {}
        self.known: set[str] = set()

    def _raw(self, name: str) -> str | None:
        self.known.add(name)
        if len(self.handler.get_query_arguments(name, strip=False)) > 1:
            self.errors[name] = "must be given at most once"
            return None
        raw = self.handler.get_query_argument(name, None, strip=False)
        return None if raw is None or raw == "" else raw

    def integer(self, name: str, low: int = 1, high: int = MAX_ID) -> int | None:
        """An integer from ``low`` to ``high``; None when absent or empty."""
        raw = self._raw(name)
        if raw is None:
            return None
        # ASCII digits only ("²".isdigit() holds, int("²") raises), and few enough for int().
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
            self.errors[name] = f"must be an integer from {low} to {high}"
            return None
        return int(raw)

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        """One of ``choices``; None when absent or empty."""
        raw = self._raw(name)
        if raw is not None and raw not in choices:
            self.errors[name] = "must be one of " + ", ".join(choices)
            return None
        return raw

    def text(self, name: str, max_len: int) -> str | None:
        """Text of at most ``max_len`` characters, trimmed; None when absent or blank."""
        raw = self._raw(name)
        if raw is not None and len(raw) > max_len:
            self.errors[name] = f"must be at most {max_len} characters"
            return None
        return (raw or "").strip() or None

    def check(self) -> None:
        """Raise 422 ``invalid_fields`` naming each bad parameter, if any.

        A parameter the route does not take is one: a misspelt filter
        (``?actr=3``) would otherwise answer the unfiltered list.
        """
        for name in self.handler.request.query_arguments:
            if name not in self.known:
                self.errors[name[:50]] = "is not a parameter of this route"
        if self.errors:
            names = ", ".join(sorted(self.errors))
            raise ApiError(422, "invalid_fields", f"invalid query: {names}", fields=self.errors)
