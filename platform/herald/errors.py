"""Errors of the /v1 API as problem documents: JSON bodies, validation errors, django-ninja's exceptions.

`json_parse` and `validation_errors` are shared by every /v1 route: the ASGI routes before Django
(notifications.lean) and django-ninja's operations (through HeraldParser and the handlers below).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from herald.problems import Problem, problem_response
from herald.wording import json_error_detail, validation_message

logger = logging.getLogger(__name__)


# --- JSON bodies -----------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_parse(body: bytes) -> Any:
    """Parse a request body; Problem(invalid-json) for anything PostgreSQL could not store."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
        # Lone surrogates and NUL cannot be stored in PostgreSQL text or jsonb.
        # allow_nan=False: 1e400 parses as infinity, which PostgreSQL's json refuses.
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise Problem("invalid-json", json_error_detail(exc, body)) from None
    if "\\u0000" in text or "\x00" in text:
        raise Problem("invalid-json", "JSON strings must not contain NUL (\\u0000)")
    return data


def json_body(request: HttpRequest) -> Any:
    """The request's JSON, parsed once."""
    cached = getattr(request, "_herald_json", None)
    if cached is not None:
        return cached[0]
    data = json_parse(request.body)
    request._herald_json = (data,)  # type: ignore[attr-defined]
    return data


class HeraldParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        return json_body(request)


# --- validation errors ------------------------------------------------------------


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def validation_errors(raw_errors: Any) -> list[dict[str, Any]]:
    """pydantic / django-ninja errors as the `errors` member of a validation-error problem.

    `loc` is where the value was: its location, then the path inside it (["body", "to", 0], ["query",
    "limit"]); the name of the view's body parameter, which django-ninja puts second, is left out. `field` is
    that path dotted ("to.0", "limit"), or the location itself for an error about the whole body ("body").
    """
    errors = []
    for error in raw_errors:
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        if len(loc) >= 2 and loc[0] == "body":
            del loc[1]
        inner = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        location = str(loc[0]) if loc and loc[0] in _LOCATIONS else "body"
        errors.append(
            {
                "loc": loc,
                "field": ".".join(str(part) for part in inner) or (str(loc[0]) if loc else ""),
                # In words (herald.wording): no class names, regexes or "Value error," prefix.
                "msg": validation_message(error, location=location, is_root=not inner),
                "type": str(error.get("type", "")),
            }
        )
    return errors


def validation_detail(errors: list[dict[str, Any]]) -> str | None:
    """The `detail` of a validation-error problem: its first errors, each with the field it is about."""
    parts = [e["msg"] if e["field"] in _LOCATIONS else f"{e['field']}: {e['msg']}" for e in errors[:5]]
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more (see `errors`)")
    return "; ".join(parts) or None


def unknown_query_refuse(given: set[str], declared: frozenset[str]) -> None:
    """Raise Problem(validation-error) for each name in `given` not in `declared`, as for unknown body fields."""
    unknown = sorted(given - declared)
    if unknown:
        errors = [
            {
                "loc": ["query", name],
                "field": name,
                "msg": "is not a query parameter of this endpoint"
                + (f" (it takes {', '.join(f'`{n}`' for n in sorted(declared))})" if declared else ""),
                "type": "extra_forbidden",
            }
            for name in unknown
        ]
        raise Problem("validation-error", validation_detail(errors), errors=errors)


def register_error_handlers(api: NinjaAPI) -> None:
    """Answer every error of `api`'s operations with a problem document."""

    @api.exception_handler(Problem)
    def _on_problem(request: HttpRequest, exc: Problem) -> HttpResponse:
        return exc.response(request.path)

    @api.exception_handler(NinjaValidationError)
    def _on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        errors = validation_errors(exc.errors)
        return problem_response("validation-error", validation_detail(errors), instance=request.path, errors=errors)

    @api.exception_handler(HttpError)
    def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if exc.status_code == 400:
            # django-ninja turns a parser's error into "Cannot parse request body": say what is wrong with it.
            try:
                json_body(request)
            except Problem as problem:
                return problem.response(request.path)
        slug = {400: "invalid-json", 401: "authentication-required", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "validation-error" if exc.status_code == 422 else "internal-error"
        )
        return problem_response(slug, instance=request.path)

    @api.exception_handler(Http404)
    def _on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem_response("not-found", instance=request.path)

    @api.exception_handler(Exception)
    def _on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response("internal-error", instance=request.path)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a problem document under /v1/, Django's page elsewhere."""
    if request.path.startswith("/v1/"):
        slash = _encoded_slash_problem(request)
        if slash is not None:
            return slash.response(request.path)
        return problem_response("not-found", "No such endpoint", instance=request.path)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


_SLASH_PARAMETERS = {"/v1/subscribers/": ("subscriber_id", "a subscriber id"), "/v1/topics/": ("key", "a topic key")}


def _encoded_slash_problem(request: HttpRequest) -> Problem | None:
    """A `%2F` in a subscriber id or topic key: the server decodes it to `/`, so no route matched; say why."""
    raw_path = getattr(request, "scope", {}).get("raw_path") or b""
    if b"%2f" not in raw_path.lower():
        return None
    for prefix, (field, what) in _SLASH_PARAMETERS.items():
        if request.path.startswith(prefix):
            errors = [
                {
                    "loc": ["path", field],
                    "field": field,
                    "msg": f"`/` is not allowed in {what} (it was sent as %2F); choose ids without `/`",
                    "type": "string_pattern_mismatch",
                }
            ]
            return Problem("validation-error", validation_detail(errors), errors=errors)
    return None
