"""The ceiling: a minimal `websockets` server that relays Redis pub/sub to its sockets.

    python raw_server.py PORT REDIS_URL

A message on Redis channel `raw` is `<subscriber id or *>|<frame>`: `*` goes to
every socket with websockets.broadcast, anything else to that subscriber's
sockets (`/?sub=<id>`). No tenants, no auth, no storage.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()
by_sub: dict[str, set[ServerConnection]] = defaultdict(set)


async def handler(ws: ServerConnection) -> None:
    sub = parse_qs(urlsplit(ws.request.path).query).get("sub", [""])[0] if ws.request else ""
    clients.add(ws)
    by_sub[sub].add(ws)
    try:
        await ws.wait_closed()
    finally:
        clients.discard(ws)
        by_sub[sub].discard(ws)


async def relay(url: str) -> None:
    pubsub = redis.from_url(url).pubsub()
    await pubsub.subscribe("raw")
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        target, _, frame = message["data"].decode().partition("|")
        broadcast(clients if target == "*" else by_sub.get(target, ()), frame)


async def main() -> None:
    port, url = int(sys.argv[1]), sys.argv[2]
    async with serve(handler, "127.0.0.1", port, max_size=2**16, compression=None, backlog=4096):
        await relay(url)


if __name__ == "__main__":
    asyncio.run(main())
