"""Serving the inbox widget: one immutable, versioned file any site may load.

`/widget/v1/herald.js` is the ES module of `<herald-inbox>`. It is cached for a
year (`immutable`: a release that changes it changes its path), readable from
any origin (module scripts are fetched with CORS), and pinned by customers
with the Subresource Integrity hash `widget_integrity()` gives.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.views.decorators.http import require_safe

WIDGET_VERSION = "v1"
WIDGET_RESOURCE = f"static/herald/widget/{WIDGET_VERSION}/herald.js"
WIDGET_URL_PATH = f"/widget/{WIDGET_VERSION}/herald.js"
CACHE_CONTROL = "public, max-age=31536000, immutable"
CONTENT_TYPE = "text/javascript; charset=utf-8"


@dataclass(frozen=True)
class WidgetAsset:
    """The widget file as served: its bytes, a gzip of them and the hashes that name them."""

    body: bytes
    gzipped: bytes
    etag: str
    integrity: str


def widget_source() -> bytes:
    """The widget's bytes from the installed package (works for wheels and editable installs)."""
    return resources.files("notifications").joinpath(WIDGET_RESOURCE).read_bytes()


def integrity_for(body: bytes) -> str:
    """The Subresource Integrity value (`sha384-<base64>`) of `body`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode("ascii")


@functools.cache
def widget_asset() -> WidgetAsset:
    """The widget, read and compressed once per process: the file is immutable per release."""
    body = widget_source()
    # mtime=0: the same bytes give the same gzip, whichever process serves them.
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    return WidgetAsset(
        body=body,
        gzipped=gzipped,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        integrity=integrity_for(body),
    )


def widget_integrity() -> str:
    """The SRI hash customers put in `integrity="…"` of the widget's script tag."""
    return widget_asset().integrity


def widget_snippet(*, base_url: str, publishable_key: str = "pk_live_…") -> str:
    """The HTML customers paste into their app, pinned to this release."""
    return (
        f'<script type="module" src="{base_url}{WIDGET_URL_PATH}"\n'
        f'        integrity="{widget_integrity()}" crossorigin="anonymous"></script>\n'
        f'<herald-inbox publishable-key="{publishable_key}" subscriber-id="…" subscriber-hash="…"></herald-inbox>'
    )


def _accepts_gzip(request: HttpRequest) -> bool:
    return any(part.split(";")[0].strip() == "gzip" for part in request.headers.get("Accept-Encoding", "").split(","))


@require_safe
async def widget_script(request: HttpRequest) -> HttpResponseBase:
    """GET /widget/v1/herald.js: the module, gzipped when the client accepts it."""
    asset = widget_asset()
    gzipped = _accepts_gzip(request)
    # Each encoding is its own representation, with its own strong validator.
    etag = asset.etag[:-1] + '-gz"' if gzipped else asset.etag
    response: HttpResponseBase
    if etag in (tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")):
        response = HttpResponseNotModified()
    elif gzipped:
        response = HttpResponse(asset.gzipped, content_type=CONTENT_TYPE)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(asset.body, content_type=CONTENT_TYPE)
    response["Cache-Control"] = CACHE_CONTROL
    response["ETag"] = etag
    response["Vary"] = "Accept-Encoding"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


if __name__ == "__main__":
    # `python -m notifications.widget`: the SRI hash of this release, for the README and the portal.
    print(widget_integrity())
