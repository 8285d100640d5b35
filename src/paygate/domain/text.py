"""The one rule for strings a client sends (API.md §19 "Bad input"): which characters a value may hold.

A control character (U+0000-U+001F, U+007F) has no business in an id, a code, a URL or a name, and a NUL
cannot even be stored (PostgreSQL text refuses it), so such a value is refused before anything runs.
Free text — a description, a refund reason, metadata and notes values, a dispute's evidence — may keep
tab, line feed and carriage return, which people type; a NUL is refused there too. Lone surrogates
(U+D800-U+DFFF, which a JSON `\\ud800` escape can produce) are refused everywhere: they are not
characters, and no UTF-8 column or response can hold them.

Pure: callers turn a problem into their own error (a 400 `parameter_invalid` naming the field).
"""

from __future__ import annotations

import re
from typing import Any

# Tab, line feed and carriage return: the whitespace a textarea legitimately sends.
FREE_TEXT_ALLOWED = "\t\n\r"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


# The same rules as JSON Schema (ECMA 262) patterns, for the OpenAPI document (surrogates cannot occur in
# the JSON a generated client sends, so they need no pattern).
PLAIN_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
FREE_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def problem(value: str, *, free_text: bool = False) -> str | None:
    """Why `value` is refused, or None when it is acceptable. `free_text` allows tab, LF and CR."""
    bad = (_CONTROL_EXCEPT_WHITESPACE if free_text else _CONTROL).search(value)
    if bad is not None:
        return f"must not contain control characters (found U+{ord(bad.group()):04X})"
    if _SURROGATE.search(value) is not None:
        return "must not contain unpaired surrogates"
    return None


def acceptable(value: str, *, free_text: bool = False) -> bool:
    return problem(value, free_text=free_text) is None


def storable(value: Any) -> bool:
    """Whether every string (and key) in a parsed JSON document can be stored and read back: no NUL, which
    PostgreSQL's text and jsonb refuse, and no lone surrogate, which UTF-8 cannot encode. For documents
    from outside that are kept whole (a bank's callback), where other control characters are harmless."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item) is not None:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True
