"""JSON as it goes on the wire: ujson, UTF-8 kept as is, slashes not escaped."""

from __future__ import annotations

import functools

import ujson

dumps = functools.partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False)
loads = ujson.loads

_dumps_ascii = functools.partial(ujson.dumps, ensure_ascii=True, escape_forward_slashes=True)


def dumps_for_html(document: object) -> str:
    """JSON for an HTML ``<script>`` element: no ``<`` at all, so no value can end the script.

    Escaping only ``</`` is not enough: a title holding ``<!--<script>`` puts the
    HTML parser into the "double escaped" state, where the element's own
    ``</script>`` no longer ends it.  ``<`` only occurs inside JSON strings,
    where ``\\u003c`` means the same.
    """
    return _dumps_ascii(document).replace("<", "\\u003c")
