"""JSON as it goes on the wire: ujson, UTF-8 kept as is, slashes not escaped."""

from __future__ import annotations

import functools

import ujson

dumps = functools.partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False)
loads = ujson.loads
