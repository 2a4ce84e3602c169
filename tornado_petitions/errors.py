"""The one error type the API raises; handlers turn it into the JSON error body (docs/api.md "Errors")."""

from __future__ import annotations


class ApiError(Exception):
    """A client-visible failure: an HTTP status, a stable code and a message.

    ``fields`` names the invalid fields of a 422; ``allowed`` lists the
    permitted status targets of a lifecycle 409; ``headers`` go on the
    response (``Retry-After`` for a 429).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        allowed: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.allowed = allowed
        self.headers = headers or {}

    def body(self) -> dict:
        """The ``{"error": {...}}`` document for this failure."""
        error: dict = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        if self.allowed is not None:
            error["allowed"] = self.allowed
        return {"error": error}
