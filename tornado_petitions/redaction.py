"""Secrets out of every log line: query tokens, Bearer tokens, session cookies and link tokens in paths.

The access line is written by us (``server.log_request``), but Tornado writes
its own warning and error lines (``tornado.general``, ``tornado.application``)
with the request line, a request's ``repr`` or an exception's text, any of
which may hold ``?token=`` or the token of a mailed link.  So the rule lives
here once: ``redact_path`` for the access line, and ``RedactingFilter`` on the
process's log handlers for every line of every logger, tracebacks included.
"""

from __future__ import annotations

import logging
import re

REDACTED = "***"

# Query or form parameters that carry a credential, wherever a URL appears in a message.
_SECRET_PARAMETER = re.compile(
    r"(?i)(?<![\w-])((?:access_)?token|password|petitions_session|_xsrf)=[^&\s\"'#;,)]*"
)
_BEARER = re.compile(r"(?i)\b(Bearer)\s+[^\s\"',;)]+")
# The pages a mailed link opens take the credential as the path's last segment:
# /unsubscribe/{user_id}/{token}, /signatures/confirm/{token}, /account/verify/{token},
# /account/reset/{token}.  In any path under these tops with a segment between the top and the
# last (also inside a longer path or URL: redacting too much is harmless), the last is redacted.
_LINK_TOPS = ("unsubscribe", "signatures", "account")
_LINK_TOKEN = re.compile(r"(/(?:" + "|".join(_LINK_TOPS) + r")(?:/[^/\s?#\"']+)+/)[^/\s?#\"']+")


def redact_path(path: str) -> str:
    """``path`` with the token of a mailed link replaced by ``***`` (other paths unchanged)."""
    return _LINK_TOKEN.sub(r"\1" + REDACTED, path)


def redact(text: str) -> str:
    """``text`` without credentials: link tokens in paths, ``token=`` and the like, Bearer tokens."""
    text = _LINK_TOKEN.sub(r"\1" + REDACTED, text)
    text = _SECRET_PARAMETER.sub(r"\1=" + REDACTED, text)
    return _BEARER.sub(r"\1 " + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with ``redact`` before any formatter sees it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put one ``RedactingFilter`` on each handler of ``logger`` (the root logger by default).

    On the handlers, not the loggers: a logger's filter does not see the
    records its children propagate, and Tornado logs through several.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
