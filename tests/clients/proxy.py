"""A tiny TCP proxy on 127.0.0.1 for client tests: it can lose an answer, or answer 503 itself.

- `cut`: the first `cut` connections forward their request to Herald, wait until Herald starts answering
  (so the request was handled and committed), then close the client's side without passing the answer on.
- `unavailable`: the first `unavailable` connections are answered `503` by the proxy (with `retry_after`),
  and their request never reaches Herald.

Every connection's first request is recorded (`requests`), headers included, so a test can check what each
attempt carried. Later requests on a kept-alive connection are forwarded unrecorded.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Seen:
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None


@dataclass
class Proxy:
    upstream_port: int
    cut: int = 0
    unavailable: int = 0
    retry_after: str = "0"
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Proxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections += 1
                number = self._connections
            thread = threading.Thread(target=self._serve, args=(client, number), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket, number: int) -> None:
        client.settimeout(10)
        try:
            seen = _read_request(client)
            if seen is None:
                return
            with self._lock:
                self.requests.append(seen)
            if number <= self.unavailable:
                body = b"no upstream available"  # as a load balancer in front of Herald would answer
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                    + f"Retry-After: {self.retry_after}\r\nContent-Length: {len(body)}\r\n".encode()
                    + b"Connection: close\r\n\r\n"
                    + body
                )
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=20)
            upstream.sendall(seen.head + seen.body)
            if number <= self.unavailable + self.cut:
                upstream.recv(1)  # Herald answers only after its commit: the request was handled
                upstream.close()
                return  # ... and the client never hears of it
            _pipe(client, upstream, self._stop)
        except OSError:
            pass
        finally:
            client.close()


def _read_request(sock: socket.socket) -> Seen | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Seen(head=head + b"\r\n\r\n", body=body)


def _pipe(client: socket.socket, upstream: socket.socket, stop: threading.Event) -> None:
    """Both directions until either side closes (bounded by the sockets' timeouts)."""

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while not stop.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join(10)
    upstream.close()
