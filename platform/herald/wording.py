"""Error messages written for the people who read them: what was wrong and what to send instead.

pydantic's own messages name Python classes ("instance of NotificationIn"),
show regexes and prefix "Value error,"; a customer's developer needs the rule
in words. `validation_message` rewrites one pydantic / django-ninja error;
`json_error_detail` explains a body that is not JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Regex -> the rule in words, registered by the apps that declare the patterns.
_PATTERN_RULES: dict[str, str] = {}


def pattern_describe(pattern: str, rule: str) -> str:
    """Register the words for a `pattern` used in a schema (e.g. "1-255 characters, no `/`"); returns it."""
    _PATTERN_RULES[pattern] = rule
    return pattern


def json_error_detail(exc: BaseException, body: bytes) -> str:
    """Why `body` is not JSON, with line and column where the parser stopped."""
    if isinstance(exc, json.JSONDecodeError):
        if not exc.doc.strip():
            return "The request body is empty (or null): send a JSON object"
        return f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"The request body is not UTF-8: byte {exc.start} (0x{body[exc.start]:02X}) starts no valid character"
    if isinstance(exc, RecursionError):
        return "The request body is not valid JSON: it is nested too deeply"
    text = str(exc)
    if "is not valid JSON" in text:  # NaN, Infinity, -Infinity
        return f"The request body is not valid JSON: {text} (JSON has no such number)"
    if "surrogate" in text:
        return "The request body is not valid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
    if "Out of range float" in text:
        return "The request body is not valid JSON: a number is too large (it would be infinite)"
    return f"The request body is not valid JSON: {text}"


def _plural(count: Any, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def validation_message(error: dict[str, Any], *, location: str, is_root: bool) -> str:
    """One pydantic error in words; `location` is body/query/path/header, `is_root` the error is on the whole body."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    msg = str(error.get("msg", ""))
    if kind == "missing":
        if is_root and location == "body":
            return "The request body is empty (or null): send a JSON object"
        return "is required"
    if kind == "extra_forbidden":
        if location == "query":
            return "is not a query parameter of this endpoint"
        return "is not a field of this request (check its spelling)"
    # django-ninja drops each error's `input`, so no message may depend on it (both paths must read the same).
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "The request body must be a JSON object" if is_root else "must be a JSON object"
    if kind == "list_type":
        return "must be a JSON array"
    if kind in ("string_type", "str_type"):
        return "must be a string"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_type", "date_from_datetime_inexact"):
        return "must be a date like 2026-01-31"
    if kind == "string_pattern_mismatch":
        rule = _PATTERN_RULES.get(str(ctx.get("pattern", "")))
        return rule or "has characters that are not allowed here"
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must be at least {_plural(minimum, 'character')}"
    if kind == "string_too_long":
        return f"must be at most {_plural(ctx.get('max_length'), 'character')}"
    if kind == "too_short":
        return f"must have at least {_plural(ctx.get('min_length'), 'item')}"
    if kind == "too_long":
        return f"must have at most {_plural(ctx.get('max_length'), 'item')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '')}".rstrip()
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value error|Assertion failed), ", "", msg)
    # Anything else: pydantic's words without Python class names.
    return re.sub(r" or instance of \w+", "", msg)
