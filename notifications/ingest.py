"""The lean path of `POST /v1/notifications` (and /batch): a slim ASGI handler with group commit.

Sending is Herald's hot path (DESIGN.md, "Measured"): Django's stock ASGI
handler, its middleware and an ORM call through `sync_to_async` cost several
milliseconds a request, and each commit's fsync another. So in the server
process this one route is served here, on the event loop, and is otherwise
the same operation as notifications.api.notification_send:

- the same key resolution (the key cache entry tenants.resolve writes, read
  with async Redis; a miss falls back to `api_key_resolve`), the same token
  bucket and `last_used_at` rule, the same problem types;
- the same validation (notifications.api.NotificationIn) and the same SQL
  (notifications.services.SEND_SQL);
- concurrent sends of one organisation are coalesced: while one transaction
  commits, the next requests queue, and then go together in ONE transaction
  (one sequence take, one INSERT of all messages and inbox items, one fsync).
  Each 202 is still sent only after the transaction holding its row committed.

Batches go the same way, their items queued together (each item its own
message, so each is written whole or not at all). Requests with an
Idempotency-Key (or batch items with keys), and every other route, go to Django.
`HERALD_LEAN_INGEST=false` sends them to Django too.

For every other server-API route (SECRET_PATH_PREFIXES) this front resolves the
secret key and takes its token before Django, and hands both on in the scope;
a refused key is answered 429 here (see lean_http).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import psycopg
import pydantic
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from herald.api import CORS_EXPOSE_HEADERS, MAX_BODY_BYTES, json_parse, validation_errors
from herald.api_handler import SECURITY_HEADERS
from herald.compat import cache_value_decode, tenant_cache_key
from herald.problems import PROBLEM_CONTENT_TYPE, Problem
from notifications.services import (
    SEND_SQL,
    SUBSCRIBERS_ENSURE_SQL,
    T_TOPIC,
    NotificationDraft,
    SendResult,
    SentMessage,
    send_prepare,
    send_results,
)
from tenants.keys import key_hash
from tenants.models import ApiKey
from tenants.origins import origin_allowed
from tenants.ratelimit import (
    RateDecision,
    Refusal,
    publishable_identity,
    rate_limit_take_async,
    refusal_active,
    refusal_pending,
    refusal_remember,
)
from tenants.resolve import ResolvedKey, api_key_resolve, secret_key_shape_check

logger = logging.getLogger(__name__)

ASGIApp = Callable[..., Awaitable[None]]
PATH = "/v1/notifications"
BATCH_PATH = "/v1/notifications/batch"
MAX_GROUP = 200  # notifications per transaction
T_APIKEY = ApiKey._meta.db_table
_background: set[asyncio.Task[Any]] = set()


# --- database ---------------------------------------------------------------------------


class _Database:
    """One psycopg async pool per process, opened on first use on the server's loop."""

    def __init__(self) -> None:
        self.pool: Any = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Any:
        if self.pool is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self.pool is None:
                    from psycopg.conninfo import make_conninfo
                    from psycopg_pool import AsyncConnectionPool

                    db = settings.DATABASES["default"]
                    conninfo = make_conninfo(
                        dbname=str(db["NAME"]),
                        user=str(db["USER"] or "") or None,
                        password=str(db["PASSWORD"] or "") or None,
                        host=str(db["HOST"] or "") or None,
                        port=str(db["PORT"] or "") or None,
                    )
                    # All connections opened up front and kept: a pool growing under load would add a
                    # backend start (and its cold catalog caches) to the requests that made it grow.
                    size = int(settings.HERALD_INGEST_POOL_SIZE)
                    pool = AsyncConnectionPool(
                        conninfo, min_size=size, max_size=size, open=False, timeout=10, kwargs={"autocommit": True}
                    )
                    await pool.open()
                    self.pool = pool
        return self.pool


_database = _Database()


# --- group commit -------------------------------------------------------------------------


@dataclass
class _Pending:
    draft: NotificationDraft
    future: asyncio.Future[SendResult]
    touch_key: int | None


@dataclass
class _Queue:
    items: list[_Pending] = field(default_factory=list)
    running: bool = False


_queues: dict[str, _Queue] = {}

# A secret key the token bucket refused (here or in Django) is answered 429 by the server's front (lean_http)
# until its next token: no Redis, no Django, the 429 encoded once per path (tenants.ratelimit.refusal_*). Such
# a request came before the Retry-After it was given: its 429 also waits until that token, at most
# _REFUSED_DELAY seconds, so a client retrying in a loop slows itself down rather than the server (with 64
# connections looping on a Free-plan key, ~3,000 answers/s instead of ~12,000: infra/bench/ingest.py).
_REFUSED_DELAY = 0.1


async def notification_send_grouped(*, key: ResolvedKey, draft: NotificationDraft, touch: bool) -> SendResult:
    """Send one notification in the next transaction of its organisation; the result once committed."""
    return await _submit(key, [draft], touch)[0]


async def notifications_send_grouped(
    *, key: ResolvedKey, drafts: list[NotificationDraft], touch: bool
) -> list[SendResult | BaseException]:
    """Send several notifications, each on its own (a result or the failure of that one), once committed."""
    return await asyncio.gather(*_submit(key, drafts, touch), return_exceptions=True)


def _submit(key: ResolvedKey, drafts: list[NotificationDraft], touch: bool) -> list[asyncio.Future[SendResult]]:
    queue = _queues.setdefault(key.schema_name, _Queue())
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[SendResult]] = []
    for index, draft in enumerate(drafts):
        future: asyncio.Future[SendResult] = loop.create_future()
        touch_key = key.api_key_id if touch and index == 0 else None
        queue.items.append(_Pending(draft=draft, future=future, touch_key=touch_key))
        futures.append(future)
    if not queue.running:
        queue.running = True
        _spawn(_drain(key, queue))
    return futures


def _spawn(coroutine: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _drain(key: ResolvedKey, queue: _Queue) -> None:
    try:
        while queue.items:
            group, queue.items = queue.items[:MAX_GROUP], queue.items[MAX_GROUP:]
            try:
                await _flush(key, group)
            except Exception as exc:  # noqa: BLE001 - see below: every waiter gets an answer, the loop goes on
                # A statement refused by the database rolled the whole group back: retry each send alone so one
                # bad send fails alone. A lost connection may have committed: never retry that.
                if (
                    len(group) == 1
                    or not isinstance(exc, psycopg.DatabaseError)
                    or isinstance(exc, psycopg.OperationalError)
                ):
                    logger.exception("group commit of %d notifications failed", len(group))
                    for pending in group:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                logger.warning("group of %d notifications refused; retrying each alone", len(group), exc_info=True)
                for pending in group:
                    if pending.future.done():
                        continue
                    try:
                        await _flush(key, [pending])
                    except Exception as exc:  # noqa: BLE001 - this waiter gets its failure, the loop goes on
                        logger.exception("sending one notification failed")
                        if not pending.future.done():
                            pending.future.set_exception(exc)
    finally:
        queue.running = False


# Server-side prepared statements, per connection and organisation: PostgreSQL plans SEND_SQL (about
# 0.9 ms) once per connection and schema instead of on every transaction. Table names are qualified with
# the schema, so a plan never depends on search_path. Names by backend pid, least recently used last out.
_PREPARED_MAX = 256  # statements per connection (two per organisation)
_DEALLOCATE_ALL = ""  # marker: this connection's prepared statements are unknown
_prepared: dict[int, OrderedDict[str, None]] = {}
_SQL_PARAMS = {"%(items)s": "$1", "%(n)s": "$2", "%(pk_limit)s": "$3", "%(now)s": "$4"}
_TABLE = re.compile(r"\b(notifications_[a-z]+)\b")


def _prepared_on(conn: Any) -> OrderedDict[str, None]:
    pid = int(conn.info.backend_pid)
    found = _prepared.get(pid)
    if found is None:
        if len(_prepared) > 64:  # pids of closed connections
            _prepared.clear()
        found = _prepared[pid] = OrderedDict()
    return found


def _qualified(sql: str, schema_name: str) -> str:
    schema = '"' + schema_name.replace('"', '""') + '"'
    return _TABLE.sub(lambda m: f"{schema}.{m.group(1)}", sql)


def _statement_sql(kind: str, schema_name: str) -> str:
    if kind == "ensure":
        return "(text[]) AS " + _qualified(SUBSCRIBERS_ENSURE_SQL.replace("%s", "$1"), schema_name)
    sql = SEND_SQL
    for placeholder, number in _SQL_PARAMS.items():
        sql = sql.replace(placeholder, number)
    return "(json, bigint, bigint, timestamptz) AS " + _qualified(sql, schema_name)


def _execute(names: OrderedDict[str, None], schema_name: str, kind: str, arguments: str) -> list[str]:
    """The statements that run `kind` for this schema on this connection: PREPARE first if needed.

    With settings.DATABASE_PREPARED_STATEMENTS off, the statement itself (schema-qualified, its arguments
    bound client-side like the rest of the query), prepared nowhere.
    """
    if not settings.DATABASE_PREPARED_STATEMENTS:
        sql = SUBSCRIBERS_ENSURE_SQL.replace("%s", arguments) if kind == "ensure" else SEND_SQL
        return [_qualified(sql, schema_name).strip()]
    statements = []
    if _DEALLOCATE_ALL in names:
        names.clear()
        statements.append("DEALLOCATE ALL")
    name = f"herald_{kind}_{hashlib.sha1(schema_name.encode()).hexdigest()[:16]}"  # noqa: S324 - a name
    if name in names:
        names.move_to_end(name)
    else:
        while len(names) >= _PREPARED_MAX:
            evicted, _ = names.popitem(last=False)
            statements.append(f"DEALLOCATE {evicted}")
        statements.append(f"PREPARE {name} {_statement_sql(kind, schema_name)}")
        names[name] = None
    statements.append(f"EXECUTE {name}({arguments})")
    return statements


async def _flush(key: ResolvedKey, group: list[_Pending]) -> None:
    """One transaction for `group`: topics, new subscribers, messages + inbox items + sequence, last_used_at.

    The transaction is ONE simple-protocol query (BEGIN; SET LOCAL search_path; EXECUTE ensure subscribers;
    EXECUTE SEND_SQL; last_used_at; COMMIT, with a PREPARE before each statement the connection has not
    prepared for this schema yet), parameters bound client-side: one round trip instead of five. On a loop
    shared with thousands of sockets every round trip is a wait in its ready queue, and five of them made a
    send to one subscriber of one of ten organisations p50 16-26 ms at 200 sends/s (infra/bench/realtime.py,
    (a)). A topic send looks its topics up first (one more round trip), so a missing topic fails alone.
    """
    pool = await _database.get()
    schema = '"' + key.schema_name.replace('"', '""') + '"'
    topics = sorted({p.draft.topic for p in group if p.draft.topic is not None})
    async with pool.connection() as conn:
        topic_pks: dict[str, int] = {}
        if topics:
            cursor = await conn.execute(f"SELECT key, id FROM {schema}.{T_TOPIC} WHERE key = ANY(%s)", [topics])
            topic_pks = {row[0]: int(row[1]) for row in await cursor.fetchall()}
        ready = []
        for pending in group:
            if pending.draft.topic is not None and pending.draft.topic not in topic_pks:
                pending.future.set_exception(Problem("not-found", f"No topic {pending.draft.topic!r}"))
            else:
                ready.append(pending)
        touched = sorted({p.touch_key for p in group if p.touch_key is not None})
        if not ready and not touched:
            return
        # The statements name their schema; search_path too, should anything ever not.
        statements = ["BEGIN", f"SET LOCAL search_path TO {schema}, public"]
        params: dict[str, Any] = {}
        prepared_names = _prepared_on(conn)
        external_ids = sorted({i for p in ready for i in (p.draft.to or [])})
        if external_ids:
            statements += _execute(prepared_names, key.schema_name, "ensure", "%(external_ids)s")
            params["external_ids"] = external_ids
        send_at = None
        drafts = [p.draft for p in ready]
        if ready:
            prepared = send_prepare(drafts, topic_pks)
            statements += _execute(prepared_names, key.schema_name, "send", "%(items)s, %(n)s, %(pk_limit)s, %(now)s")
            send_at = len(statements) - 1
            params.update(prepared.params)
        if touched:
            statements.append(f"UPDATE public.{T_APIKEY} SET last_used_at = %(touched_at)s WHERE id = ANY(%(touched)s)")
            params.update(touched_at=timezone.now(), touched=touched)
        statements.append("COMMIT")
        cursor = psycopg.AsyncClientCursor(conn)
        try:
            await cursor.execute(";\n".join(statements), params)
        except BaseException:
            # What this query prepared before it failed is unknown: start over on this connection.
            prepared_names.clear()
            prepared_names[_DEALLOCATE_ALL] = None
            raise
        sent: list[SentMessage] = []
        if send_at is not None:
            for _ in range(send_at):
                cursor.nextset()
            sent = send_results(prepared, drafts, topic_pks, await cursor.fetchall())
    # Committed: answer every sender, then publish (a hint; clients recover by cursor).
    for pending, message in zip(ready, sent, strict=True):
        pending.future.set_result(message.result)
    if any(message.result.recipients for message in sent):
        _spawn(_publish(key.organization_id, sent))


async def _publish(organization_id: int, sent: list[SentMessage]) -> None:
    from notifications.realtime import agroup_send_many
    from notifications.services import sent_message_events

    await agroup_send_many(sent_message_events(organization_id, sent))


# --- keys ------------------------------------------------------------------------------------


@dataclass
class _RedisHolder:
    client: Any = None

    def get(self) -> Any:
        if self.client is None:
            import redis.asyncio as aioredis

            self.client = aioredis.Redis.from_url(str(settings.REDIS_URL), socket_timeout=1.0)
        return self.client


_redis = _RedisHolder()


async def secret_key_resolve(authorization: str | None) -> ResolvedKey:
    """tenants.resolve.request_secret_key for the event loop: the key cache read with async Redis."""
    if not authorization:
        raise Problem("authentication-required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem("authentication-required", "Authorization must be `Bearer <key>`")
    secret_key_shape_check(token)
    hashed = key_hash(token)
    resolved: ResolvedKey | None = None
    try:
        # The entry api_key_resolve caches, in the public schema.
        raw = await _redis.get().get(tenant_cache_key(f"apikey:{hashed}", schema_name="public"))
        if raw is not None:
            cached = cache_value_decode(raw)
            if isinstance(cached, ResolvedKey):
                resolved = cached
    except Exception:  # noqa: BLE001 - fall back to the sync path, which reads the database
        logger.warning("key cache unavailable", exc_info=True)
    if resolved is None:
        resolved = await sync_to_async(_resolve_and_release, thread_sensitive=False)(token)
        if resolved is None:
            raise Problem("invalid-api-key")
    if not hmac.compare_digest(resolved.key_hash, hashed) or resolved.kind != "secret":
        raise Problem("invalid-api-key")
    if resolved.expires_at is not None and resolved.expires_at <= timezone.now():
        raise Problem("invalid-api-key")
    return resolved


def _resolve_and_release(token: str) -> ResolvedKey | None:
    """api_key_resolve in a worker thread, its connection handed back to the pool afterwards."""
    from django.db import connection

    try:
        return api_key_resolve(token)
    finally:
        connection.close()


# --- ASGI -------------------------------------------------------------------------------------


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


@dataclass(frozen=True)
class _Answer:
    """A whole HTTP answer as its two ASGI messages (the server does not change them, so one can be re-sent)."""

    start: dict[str, Any]
    body: dict[str, Any]

    async def send(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        await send(self.start)
        await send(self.body)


def _answer(
    status: int, body: dict[str, Any], *, content_type: str = "application/json", extra: dict[str, str] | None = None
) -> _Answer:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in {**SECURITY_HEADERS, **(extra or {})}.items()
    ]
    return _Answer(
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    )


def _problem_answer(problem: Problem, decision: RateDecision | None, path: str) -> _Answer:
    headers = {**(decision.headers() if decision else {}), **problem.headers}
    return _answer(problem.status, problem.document(path), content_type=PROBLEM_CONTENT_TYPE, extra=headers)


async def _problem(
    send: Callable[[dict[str, Any]], Awaitable[None]], problem: Problem, decision: RateDecision | None, path: str
) -> None:
    await _problem_answer(problem, decision, path).send(send)


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes | None:
    """The whole body, or None when it is over the limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _validated(model: Any, data: Any) -> Any:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = validation_errors(
            {**error, "loc": ("body", "payload", *error.get("loc", ()))} for error in exc.errors()
        )
        detail = "; ".join(f"{e['field']}: {e['msg']}" for e in errors[:5])
        raise Problem("validation-error", detail, errors=errors) from None


def _batch_entry(index: int, outcome: SendResult | BaseException) -> dict[str, Any]:
    """One item of a batch's answer, as notifications.api.notification_send_batch shapes it."""
    entry: dict[str, Any] = {"index": index, "replayed": False, "id": None, "seq": None, "recipients": None}
    if isinstance(outcome, SendResult):
        entry.update(status=202, error=None, **outcome.as_dict())
        return entry
    problem = outcome if isinstance(outcome, Problem) else Problem("internal-error")
    kind = problem.problem_type
    entry.update(
        status=kind.status,
        error={"type": kind.uri, "title": kind.title, "status": kind.status, "detail": problem.detail},
    )
    return entry


def _has_item_keys(data: Any) -> bool:
    items = data.get("notifications") if isinstance(data, dict) else None
    return isinstance(items, list) and any(isinstance(i, dict) and i.get("idempotency_key") for i in items)


async def ingest(scope: dict[str, Any], receive: Any, send: Any, django: ASGIApp) -> None:
    """POST /v1/notifications and /batch on the event loop; requests with idempotency keys go to Django."""
    from notifications.api import BatchIn, NotificationIn

    batch = scope["path"] == BATCH_PATH
    headers = _headers(scope)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await _problem(send, Problem("payload-too-large"), None, scope["path"])
        return
    body = await _read_body(receive)
    if body is None:
        await _problem(send, Problem("payload-too-large"), None, scope["path"])
        return
    parsed = _parsed_or_none(body) if batch and body else None  # parsed once: a batch is large
    if "idempotency-key" in headers or (batch and _has_item_keys(parsed)):
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await django(scope, replay, send)
        return
    decision: RateDecision | None = None
    try:
        key, decision, touch = await _key_and_token(headers.get("authorization"))
        data = parsed if parsed is not None else json_parse(body) if body else None
        if batch:
            drafts = [item.draft() for item in _validated(BatchIn, data).notifications]
            outcomes = await notifications_send_grouped(key=key, drafts=drafts, touch=touch)
            for outcome in outcomes:
                if not isinstance(outcome, Problem | SendResult):
                    logger.error("batch item failed", exc_info=outcome)
            answer = {"results": [_batch_entry(i, outcome) for i, outcome in enumerate(outcomes)]}
            status = 200
        else:
            payload = _validated(NotificationIn, data)
            answer = (await notification_send_grouped(key=key, draft=payload.draft(), touch=touch)).as_dict()
            status = 202
    except Problem as problem:
        await _problem(send, problem, decision, scope["path"])
        return
    except Exception:
        logger.exception("unhandled error in POST %s", scope["path"])
        await _problem(send, Problem("internal-error"), decision, scope["path"])
        return
    await _answer(status, answer, extra=decision.headers()).send(send)


def _parsed_or_none(body: bytes) -> Any:
    try:
        return json_parse(body)
    except Problem:
        return None


# The server API's routes (every secret-key operation of notifications.api; a test keeps them in step). Their
# key and token bucket are checked here, on the event loop, before Django: a refused request never waits for
# Django's worker thread, and never makes another organisation's requests wait behind it there.
SECRET_PATH_PREFIXES = ("/v1/subscribers", "/v1/topics", "/v1/notifications", "/v1/messages/", "/v1/usage")
WIDGET_PATH_PREFIX = "/v1/inbox"  # the widget API: refused publishable keys answered here too
FRONT_KEY = "herald.secret_key"  # scope entries the front hands Django: the resolved key ...
FRONT_RATE = "herald.rate"  # ... and (RateDecision, touch last_used_at)


async def _discard_body(receive: Any) -> None:
    """Read an unanswered request's body out of the way."""
    while (await receive()).get("more_body"):
        pass


async def _refused_here(scope: dict[str, Any], receive: Any, send: Any, identity: str) -> bool:
    """Answer a request whose key the bucket refused and has no token yet: True when answered."""
    refusal = refusal_active(identity)
    if refusal is None:
        return False
    path = str(scope["path"])
    answer = refusal.answers.get(path)
    if answer is None:
        decision = refusal.decision
        answer = refusal.answers[path] = _problem_answer(
            Problem("rate-limited", headers=decision.headers()), decision, path
        )
    await _refuse(receive, send, refusal, answer)
    return True


async def _refuse(receive: Any, send: Any, refusal: Refusal, answer: _Answer) -> None:
    await _discard_body(receive)
    await asyncio.sleep(min(max(0.0, refusal.until - time.monotonic()), _REFUSED_DELAY))
    await answer.send(send)


def _widget_key(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The publishable key a widget request names, as tenants.resolve.request_publishable_key reads it."""
    candidates = [
        headers.get("x-herald-publishable-key"),
        *parse_qs(scope["query_string"].decode("latin-1")).get("pk", []),
    ]
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip().startswith(("pk_", "sk_")):
        candidates.append(token.strip())
    keys = {c.strip() for c in candidates if c and c.strip()}
    return keys.pop() if len(keys) == 1 else None


async def _widget_refused_here(scope: dict[str, Any], receive: Any, send: Any) -> bool:
    """Answer a widget request whose publishable key the bucket refused and has no token yet, with the CORS
    headers Django would add; True when answered. From an origin the key does not allow: Django answers."""
    headers = _headers(scope)
    key = _widget_key(scope, headers)
    refusal = refusal_active(publishable_identity(key_hash(key))) if key else None
    if refusal is None:
        return False
    origin = headers.get("origin")
    if origin and not origin_allowed(origin, list(refusal.origins)):
        return False
    path = str(scope["path"])
    answer = refusal.answers.get(f"{path} {origin}")
    if answer is None:
        decision = refusal.decision
        cors = {"Vary": "Origin"}
        if origin:
            cors.update({"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS})
        problem = Problem("rate-limited", headers={**decision.headers(), **cors})
        answer = refusal.answers[f"{path} {origin}"] = _problem_answer(problem, decision, path)
    await _refuse(receive, send, refusal, answer)
    return True


async def _key_and_token(authorization: str | None) -> tuple[ResolvedKey, RateDecision, bool]:
    """The secret key and a token from its bucket (and whether to touch last_used_at); a Problem when either is
    refused (a refused key remembered until its next token)."""
    key = await secret_key_resolve(authorization)
    decision, touch = await rate_limit_take_async(api_key_id=key.api_key_id, plan=key.plan)
    if not decision.allowed:
        refusal_remember(authorization, decision)
        raise Problem("rate-limited", headers=decision.headers())
    return key, decision, touch


async def _front_checked(scope: dict[str, Any], receive: Any, send: Any, authorization: str | None) -> bool:
    """Resolve the key and take its token for Django; True when refused (and answered) here.

    A key that does not resolve goes on to Django, which answers it as always.
    """
    try:
        key, decision, touch = await _key_and_token(authorization)
    except Problem as problem:
        if problem.problem_type.slug != "rate-limited":
            return False
        await _discard_body(receive)
        await _problem(send, problem, None, str(scope["path"]))
        return True
    except Exception:  # noqa: BLE001 - Django resolves it again and answers whatever went wrong
        logger.warning("key resolution at the front failed", exc_info=True)
        return False
    scope[FRONT_KEY], scope[FRONT_RATE] = key, (decision, touch)
    return False


def lean_http(django: ASGIApp, api: ASGIApp | None = None) -> ASGIApp:
    """The HTTP application: the server API's keys and rate limits at the front, the lean send path, then
    `api` (Django for /v1/, herald.api_handler) for the API's other requests and `django` for the rest."""
    lean = bool(settings.HERALD_LEAN_INGEST)
    api = api or django

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await django(scope, receive, send)
            return
        if scope["path"].startswith(WIDGET_PATH_PREFIX) and scope["method"] != "OPTIONS" and refusal_pending():
            try:
                if await _widget_refused_here(scope, receive, send):
                    return
            except ConnectionResetError:
                return
        if scope["path"].startswith(SECRET_PATH_PREFIXES) and scope["method"] != "OPTIONS":
            scope = dict(scope)  # ours to add to: Django reads FRONT_KEY / FRONT_RATE from it
            authorization = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"authorization"), None)
            try:
                if authorization and refusal_pending() and await _refused_here(scope, receive, send, authorization):
                    return
                if lean and scope["method"] == "POST" and scope["path"] in (PATH, BATCH_PATH):
                    await ingest(scope, receive, send, api)
                    return
                if await _front_checked(scope, receive, send, authorization):
                    return
            except ConnectionResetError:
                return
        await api(scope, receive, send)

    return application
