"""JSON as it goes on the wire: ujson, UTF-8 kept as is, slashes not escaped."""

from __future__ import annotations

import functools

import ujson

dumps = functools.partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False)
loads = ujson.loads

# For JSON written into an HTML <script>: "</" becomes "<\/", so no value can end the script.
dumps_for_html = functools.partial(ujson.dumps, ensure_ascii=True, escape_forward_slashes=True)
