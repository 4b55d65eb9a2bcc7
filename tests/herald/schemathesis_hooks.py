"""A check of tests/herald/test_openapi.py's schemathesis runs, which load it through SCHEMATHESIS_HOOKS.

schemathesis's own ensure_resource_availability (a resource just created answers 404) only follows POST
creations; Herald's subscribers and topics are created by PUT, under the caller's id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import schemathesis

# The paths whose PUT creates the resource, with the path parameter naming it.
CREATED_BY_PUT = {"/v1/subscribers/{subscriber_id}": "subscriber_id", "/v1/topics/{key}": "key"}


@schemathesis.check
class PutResourceIsFound:
    """A subscriber or topic that a PUT answered 2xx for is not answered 404 (read or erased) until a DELETE
    answered 204. Keeps the last answer per resource: a replay or a shrink only says again what the server holds."""

    def __init__(self) -> None:
        self.created: dict[tuple[str, str], str] = {}  # (path, id) -> the request that created it

    def after_response(self, ctx: Any, response: Any, case: Any) -> None:
        path = case.operation.path
        parameter = CREATED_BY_PUT.get(path)
        if parameter is None or parameter not in (case.path_parameters or {}):
            return
        resource = (path, unquote(str(case.path_parameters[parameter])))
        method, status = case.method.upper(), response.status_code
        if method == "PUT" and 200 <= status < 300:
            self.created[resource] = f"PUT {case.formatted_path}"
        elif method == "DELETE" and status == 204:
            self.created.pop(resource, None)
        elif method in ("GET", "DELETE") and status == 404 and resource in self.created:
            raise AssertionError(
                f"{method} {case.formatted_path} answered 404 for a resource created by "
                f"{self.created[resource]} (answered 2xx) and not deleted since"
            )
