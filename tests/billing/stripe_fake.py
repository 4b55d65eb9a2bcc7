"""Stripe for the tests, on 127.0.0.1: localstripe for customers, subscriptions and invoices, and a small fake.

Run as `python -m tests.billing.stripe_fake --port P --localstripe-port L` (tests/billing/conftest.py does).
localstripe 1.15.10 is started from Python on 127.0.0.1 with its pickle file switched off (its `start()` binds
every interface and reloads /tmp/localstripe.pickle). The fake answers what localstripe lacks, in the shapes
Stripe documents: Prices, Checkout Sessions, Customer Portal sessions, Billing Meter events and their summaries.
Everything else is passed through to localstripe, so the `stripe` library needs one api_base: the fake's.

Test-only routes under /_test/ complete a Checkout Session (creating its subscription in localstripe, as Stripe
does when the customer pays) and list the meter events received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def _error(status: int, message: str, *, param: str | None = None) -> web.Response:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    return web.json_response({"error": error}, status=status)


def _form(data: Any) -> dict[str, Any]:
    """localstripe's decoder of Stripe's form encoding (a[b][0][c]=...), so both parts read bodies alike."""
    from localstripe.server import unflatten_data

    return dict(unflatten_data(data) or {})


class FakeStripe:
    def __init__(self, localstripe_url: str) -> None:
        self.localstripe_url = localstripe_url
        self.prices: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.meter_events: dict[str, dict[str, Any]] = {}  # by identifier: Stripe de-duplicates on it
        self.meter_event_calls = 0
        # Subscription states localstripe cannot reach (a failed renewal: past_due), as Stripe would report them.
        self.subscription_status: dict[str, str] = {}
        self.client: aiohttp.ClientSession | None = None

    async def localstripe(self, method: str, path: str, request: web.Request, body: Any = None) -> Any:
        assert self.client is not None
        async with self.client.request(
            method,
            self.localstripe_url + path,
            data=body,
            headers={"Authorization": request.headers.get("Authorization", "")},
        ) as response:
            return response.status, await response.json()

    # --- prices (a localstripe plan of the same id is made alongside, for its subscriptions) ---------------

    async def price_create(self, request: web.Request) -> web.Response:
        data = _form(await request.post())
        price_id = data.get("id") or _id("price")
        recurring = data.get("recurring") or {}
        product_data = data.get("product_data") or {"name": data.get("nickname") or price_id}
        usage_type = recurring.get("usage_type", "licensed")
        plan = {
            "id": price_id,
            "currency": data.get("currency", "usd"),
            "amount": str(data.get("unit_amount", "0")),
            "interval": recurring.get("interval", "month"),
            "usage_type": usage_type,
            "product[name]": product_data["name"],
        }
        status, body = await self.localstripe("POST", "/v1/plans", request, plan)
        if status != 200:
            return web.json_response(body, status=status)
        price = {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": int(time.time()),
            "currency": plan["currency"],
            "livemode": False,
            "lookup_key": data.get("lookup_key"),
            "metadata": data.get("metadata") or {},
            "nickname": data.get("nickname"),
            "product": body["product"],
            "recurring": {"interval": plan["interval"], "interval_count": 1, "usage_type": usage_type},
            "type": "recurring",
            "unit_amount": int(plan["amount"]),
        }
        self.prices[price_id] = price
        return web.json_response(price)

    async def price_retrieve(self, request: web.Request) -> web.Response:
        price = self.prices.get(request.match_info["id"])
        if price is None:
            return _error(404, f"No such price: '{request.match_info['id']}'", param="id")
        return web.json_response(price)

    # --- Checkout Sessions -------------------------------------------------------------------------------

    async def session_create(self, request: web.Request) -> web.Response:
        data = _form(await request.post())
        if data.get("mode") != "subscription":
            return _error(400, "Only subscription mode is supported by this fake.", param="mode")
        items = data.get("line_items") or []
        for item in items:
            if item.get("price") not in self.prices:
                return _error(400, f"No such price: '{item.get('price')}'", param="line_items")
        for required in ("success_url", "customer"):
            if not data.get(required):
                return _error(400, f"Missing required param: {required}.", param=required)
        session_id = _id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "customer": data["customer"],
            "client_reference_id": data.get("client_reference_id"),
            "metadata": data.get("metadata") or {},
            "success_url": data["success_url"],
            "cancel_url": data.get("cancel_url"),
            "subscription": None,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "created": int(time.time()),
            "livemode": False,
            "_line_items": items,
        }
        self.sessions[session_id] = session
        return web.json_response(self._public(session))

    @staticmethod
    def _public(session: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in session.items() if not key.startswith("_")}

    async def session_retrieve(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, f"No such checkout.session: '{request.match_info['id']}'", param="id")
        return web.json_response(self._public(session))

    async def session_complete(self, request: web.Request) -> web.Response:
        """The customer paid: the subscription is made in localstripe, the session is complete."""
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "no such session")
        # Paying leaves a card on the customer (localstripe makes subscriptions only for customers with one).
        card = {
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "2040",
            "card[cvc]": "123",
        }
        status, token = await self.localstripe("POST", "/v1/tokens", request, card)
        if status != 200:
            return web.json_response(token, status=status)
        status, body = await self.localstripe(
            "POST", f"/v1/customers/{session['customer']}/sources", request, {"source": token["id"]}
        )
        if status != 200:
            return web.json_response(body, status=status)
        form: dict[str, str] = {"customer": session["customer"]}
        for index, item in enumerate(session["_line_items"]):
            form[f"items[{index}][plan]"] = item["price"]
        status, body = await self.localstripe("POST", "/v1/subscriptions", request, form)
        if status != 200:
            return web.json_response(body, status=status)
        session.update(status="complete", payment_status="paid", subscription=body["id"])
        return web.json_response(self._public(session))

    # --- Customer Portal -----------------------------------------------------------------------------------

    async def portal_session_create(self, request: web.Request) -> web.Response:
        data = _form(await request.post())
        customer = data.get("customer")
        if not customer:
            return _error(400, "Missing required param: customer.", param="customer")
        status, body = await self.localstripe("GET", f"/v1/customers/{customer}", request)
        if status != 200:
            return web.json_response(body, status=status)
        session_id = _id("bps")
        return web.json_response(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": customer,
                "return_url": data.get("return_url"),
                "url": f"https://billing.stripe.test/p/session/{session_id}",
                "created": int(time.time()),
                "livemode": False,
            }
        )

    # --- Billing Meters --------------------------------------------------------------------------------------

    async def meter_event_create(self, request: web.Request) -> web.Response:
        self.meter_event_calls += 1
        data = _form(await request.post())
        payload = data.get("payload") or {}
        if not data.get("event_name") or "stripe_customer_id" not in payload or "value" not in payload:
            return _error(400, "event_name, payload[stripe_customer_id] and payload[value] are required")
        now = int(time.time())
        timestamp = int(data.get("timestamp") or now)
        if timestamp < now - 35 * 86400 or timestamp > now + 300:
            return _error(400, "Timestamp must be within the past 35 days and no more than 5 minutes in the future")
        identifier = data.get("identifier") or _id("mev")
        event = self.meter_events.setdefault(
            identifier,
            {
                "object": "billing.meter_event",
                "created": now,
                "event_name": data["event_name"],
                "identifier": identifier,
                "livemode": False,
                "payload": payload,
                "timestamp": timestamp,
            },
        )
        return web.json_response(event)

    async def meter_event_summaries(self, request: web.Request) -> web.Response:
        query = request.query
        for required in ("customer", "start_time", "end_time"):
            if required not in query:
                return _error(400, f"Missing required param: {required}.", param=required)
        start, end = int(query["start_time"]), int(query["end_time"])
        by_day: dict[int, float] = defaultdict(float)
        for event in self.meter_events.values():
            if event["payload"]["stripe_customer_id"] == query["customer"] and start <= event["timestamp"] < end:
                day = datetime.fromtimestamp(event["timestamp"], tz=UTC).replace(hour=0, minute=0, second=0)
                by_day[int(day.timestamp())] += float(event["payload"]["value"])
        summaries = [
            {
                "id": _id("mtrusg"),
                "object": "billing.meter_event_summary",
                "aggregated_value": value,
                "start_time": day,
                "end_time": day + 86400,
                "livemode": False,
                "meter": request.match_info["id"],
            }
            for day, value in sorted(by_day.items())
        ]
        return web.json_response({"object": "list", "data": summaries, "has_more": False, "url": request.path})

    async def subscription_status_set(self, request: web.Request) -> web.Response:
        """Test-only: from now on Stripe reports this subscription in this status (past_due after a failed renewal)."""
        data = await request.json()
        self.subscription_status[request.match_info["id"]] = data["status"]
        return web.json_response({"id": request.match_info["id"], "status": data["status"]})

    def _with_status(self, body: Any) -> Any:
        if isinstance(body, dict):
            if body.get("object") == "subscription" and body.get("id") in self.subscription_status:
                body["status"] = self.subscription_status[body["id"]]
            for value in body.values():
                self._with_status(value)
        elif isinstance(body, list):
            for value in body:
                self._with_status(value)
        return body

    async def meter_events_seen(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.meter_event_calls, "events": list(self.meter_events.values())})

    # --- everything else: localstripe ------------------------------------------------------------------------

    async def passthrough(self, request: web.Request) -> web.Response:
        assert self.client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self.client.request(
            request.method,
            self.localstripe_url + request.path_qs,
            data=await request.read(),
            headers=headers,
        ) as response:
            body = await response.read()
            if self.subscription_status and request.path.startswith("/v1/subscriptions"):
                body = json.dumps(self._with_status(json.loads(body))).encode()
            return web.Response(body=body, status=response.status, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/prices", self.price_create)
        app.router.add_get("/v1/prices/{id}", self.price_retrieve)
        app.router.add_post("/v1/checkout/sessions", self.session_create)
        app.router.add_get("/v1/checkout/sessions/{id}", self.session_retrieve)
        app.router.add_post("/_test/checkout/sessions/{id}/complete", self.session_complete)
        app.router.add_post("/v1/billing_portal/sessions", self.portal_session_create)
        app.router.add_post("/v1/billing/meter_events", self.meter_event_create)
        app.router.add_get("/v1/billing/meters/{id}/event_summaries", self.meter_event_summaries)
        app.router.add_get("/_test/meter_events", self.meter_events_seen)
        app.router.add_post("/_test/subscriptions/{id}/status", self.subscription_status_set)
        app.router.add_route("*", "/{tail:.*}", self.passthrough)
        return app


async def serve(port: int, localstripe_port: int) -> None:
    from localstripe import resources
    from localstripe.server import app as localstripe_app

    # No pickle file: every run starts empty and writes nothing to /tmp.
    resources.store.dump_to_disk = lambda: None  # type: ignore[method-assign]
    runners = []
    localstripe_runner = web.AppRunner(localstripe_app)
    await localstripe_runner.setup()
    await web.TCPSite(localstripe_runner, host="127.0.0.1", port=localstripe_port).start()
    runners.append(localstripe_runner)
    fake = FakeStripe(f"http://127.0.0.1:{localstripe_port}")
    fake.client = aiohttp.ClientSession()
    fake_runner = web.AppRunner(fake.app())
    await fake_runner.setup()
    await web.TCPSite(fake_runner, host="127.0.0.1", port=port).start()
    print(f"ready {port} {localstripe_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.client.close()
        for runner in runners + [fake_runner]:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--localstripe-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.localstripe_port))


if __name__ == "__main__":
    main()
