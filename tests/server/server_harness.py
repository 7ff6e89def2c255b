"""Real sockets for proxy tests: echo "pods" on 127.0.0.x, raw HTTP clients, hand-built configs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from proxy.routing import Cluster, Config, Endpoint, Route, RouteTable, VirtualHost
from proxy.routing.model import PATH_EXACT, PATH_PREFIX
from proxy.routing.policies import RoutePolicy
from proxy.runtime import Runtime, RuntimeHolder
from proxy.server import ProxyServer
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream
from proxy.upstream.health import HealthChecker, HealthVerdicts

TIMEOUT = 10.0
CHUNK = b"x" * 65536


# ---------------------------------------------------------------- configs


@dataclass
class Rule:
    host: str  # "" for any host
    path: str
    cluster: str
    path_type: str = PATH_PREFIX
    policy: RoutePolicy | None = None  # retries, fault injection, rate limit
    tracing: bool | None = None  # Route.tracing (None: the process's default)
    body_limit: int = 0  # Route.body_limit


def cluster(key: str, endpoints: Iterable[tuple[str, int]] = (), **kwargs: object) -> Cluster:
    namespace, _, rest = key.partition("/")
    service, _, port = rest.partition(":")
    return Cluster(
        key=key,
        namespace=namespace,
        service=service,
        port=port,
        endpoints=tuple(Endpoint(a, p) for a, p in endpoints),
        **kwargs,  # type: ignore[arg-type]
    )


def build_table(rules: Iterable[Rule]) -> RouteTable:
    hosts: dict[str, VirtualHost] = {}
    any_host = VirtualHost()
    for rule in rules:
        routes = any_host if not rule.host else hosts.setdefault(rule.host, VirtualHost())
        route = Route(
            namespace="default", ingress="test", host=rule.host, path=rule.path, path_type=rule.path_type,
            cluster=rule.cluster, policy=rule.policy, tracing=rule.tracing, body_limit=rule.body_limit,
        )
        if rule.path_type == PATH_EXACT:
            routes.exact[rule.path] = route
        else:
            routes.prefix[rule.path.rstrip("/")] = route
    return RouteTable(hosts=hosts, any_host=any_host if (any_host.exact or any_host.prefix) else None)


def make_config(rules: Iterable[Rule], clusters: Iterable[Cluster]) -> Config:
    return Config(table=build_table(rules), clusters={c.key: c for c in clusters})


class Proxy:
    """A running ProxyServer plus the upstreams it was given."""

    def __init__(self, settings: Settings, *, freeze_gc: bool = False) -> None:
        self.settings = settings
        self.holder = RuntimeHolder()
        self.server = ProxyServer(settings=settings, holder=self.holder, freeze_gc=freeze_gc)
        self.upstreams: dict[str, Upstream] = {}
        self.generation = 0
        # Active health verdicts of this proxy's upstreams, and their prober once check_health() is called.
        self.health = HealthVerdicts()
        self.checker: HealthChecker | None = None

    @property
    def port(self) -> int:
        return self.server.http_port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def check_health(self) -> HealthChecker:
        """Probe the published clusters whose policy has a health check (as the controller does), from now on."""
        self.checker = HealthChecker(self.health)
        self.checker.track(self.upstreams)
        return self.checker

    def publish(self, rules: Iterable[Rule], clusters: Iterable[Cluster], *, keep_upstreams: bool = True) -> None:
        clusters = list(clusters)
        self.publish_config(make_config(rules, clusters), clusters, keep_upstreams=keep_upstreams)

    def publish_table(self, table: RouteTable, clusters: Iterable[Cluster]) -> None:
        """Serve a hand-built table (routes with conditions, filters, weighted backends, timeouts)."""
        clusters = list(clusters)
        self.publish_config(Config(table=table, clusters={c.key: c for c in clusters}), clusters)

    def publish_config(self, config: Config, clusters: list[Cluster], *, keep_upstreams: bool = True) -> None:
        upstreams: dict[str, Upstream] = {}
        for c in clusters:
            existing = self.upstreams.get(c.key) if keep_upstreams else None
            if existing is not None:
                existing.update(c)
                upstreams[c.key] = existing
            else:
                upstreams[c.key] = Upstream(c, settings=self.settings, health=self.health)
        for key, old in self.upstreams.items():
            if key not in upstreams:
                old.close()
        self.upstreams = upstreams
        self.health.upstreams = upstreams
        if self.checker is not None:
            self.checker.track(upstreams)
        self.generation += 1
        self.holder.publish(Runtime(config=config, upstreams=upstreams, generation=self.generation))

    async def close(self) -> None:
        if self.checker is not None:
            self.checker.close()
        await self.server.close()
        for upstream in self.upstreams.values():
            upstream.close()


# ---------------------------------------------------------------- pods


class Pod:
    """An aiohttp app on its own loopback address that answers as one backend pod."""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.runner: web.AppRunner | None = None
        # Source ports seen = upstream TCP connections the proxy opened to this pod.
        self.peers: set[int] = set()
        self.requests = 0
        self.release = asyncio.Event()  # /wait blocks on it
        self.waiting = asyncio.Event()
        self.in_flight = 0  # requests being handled now
        # A pod failing on cue: called first for every request; an answer it returns is sent instead.
        self.fault: Callable[[web.Request], Awaitable[web.StreamResponse | None]] | None = None

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def start(self) -> Pod:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_get("/ws", self.websocket)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        try:
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    def fail_with(self, status: int) -> None:
        """Answer every request with `status` from now on (0: answer normally again)."""

        async def fail(request: web.Request) -> web.StreamResponse | None:
            await request.read()
            return web.Response(status=status, text=f"{self.name} failing") if status else None

        self.fault = fail if status else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(peer[1])
        if self.fault is not None:
            answer = await self.fault(request)
            if answer is not None:
                return answer
        path = request.path
        query = request.query
        if path.startswith("/download"):
            return await self.download(request, int(query.get("size", "0")), chunked=query.get("chunked") == "1")
        if path.startswith("/upload"):
            return await self.upload(request)
        if path.startswith("/slow"):
            await asyncio.sleep(float(query.get("delay", "1")))
        if path.startswith("/wait"):
            self.waiting.set()
            await self.release.wait()
        if path.startswith("/status/"):
            return web.Response(status=int(path.split("/")[2]), text="status")
        if path.startswith("/hop"):
            response = web.Response(text="hop")
            response.headers["Connection"] = "keep-alive, X-Secret"
            response.headers["X-Secret"] = "hidden"
            response.headers["Keep-Alive"] = "timeout=5"
            response.headers["Proxy-Connection"] = "keep-alive"
            response.headers["Trailer"] = "X-T"
            response.headers["Upgrade"] = "h2c"
            response.headers.add("Set-Cookie", "a=1")
            response.headers.add("Set-Cookie", "b=2")
            return response
        body = await request.read()
        data = {
            "pod": self.name,
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": body.decode("latin-1"),
            "version": f"{request.version.major}.{request.version.minor}",
        }
        return web.json_response(data, headers={"X-Pod": self.name})

    async def download(self, request: web.Request, size: int, *, chunked: bool) -> web.StreamResponse:
        response = web.StreamResponse()
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        left = size
        while left > 0:
            piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        total = 0
        async for piece in request.content.iter_any():
            digest.update(piece)
            total += len(piece)
        return web.json_response(
            {"size": total, "sha256": digest.hexdigest(), "chunked": "Transfer-Encoding" in request.headers,
             "content_length": request.headers.get("Content-Length")}
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.requests += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"{self.name}:{msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws


async def start_pods(*names: str, first: int = 2) -> list[Pod]:
    return [await Pod(name, f"127.0.0.{first + i}").start() for i, name in enumerate(names)]


# ---------------------------------------------------------------- raw backends


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawBackend:
    """A plain asyncio server with a custom handler, counting connections."""

    host: str
    handler: Handler
    port: int = 0
    connections: int = 0
    server: asyncio.AbstractServer | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> RawBackend:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_client, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.writers:
                writer.close()


async def read_head(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str]]:
    """Read one request head; returns (request line, lower-cased headers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0].encode(), headers


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    line, headers = await read_head(reader)
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return line, headers, body


# ---------------------------------------------------------------- raw clients


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> dict:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader, *, head: bool = False, timeout: float = TIMEOUT) -> Response:
    """Read exactly one final response (1xx skipped); bytes after it stay in ``reader``.

    A deliberately separate, strict parser (not httptools, which the proxy itself uses).
    """
    async with asyncio.timeout(timeout):
        while True:
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                raise ConnectionError(f"closed before a response head: {exc.partial[:100]!r}") from exc
            lines = raw[:-4].decode("latin-1").split("\r\n")
            version, status_text = lines[0].split(" ", 2)[:2]
            assert version in ("HTTP/1.1", "HTTP/1.0"), lines[0]
            status = int(status_text)
            headers = []
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                assert sep and name == name.strip(), line
                headers.append((name, value.strip()))
            if status >= 200 or status == 101:
                break
        fields = {k.lower(): v for k, v in headers}
        connection = fields.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        body = b""
        if head or status in (101, 204, 304):
            pass
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                try:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":
                            pass
                        break
                    parts.append(await reader.readexactly(size))
                    assert await reader.readexactly(2) == b"\r\n"
                except asyncio.IncompleteReadError as exc:
                    raise ConnectionError("closed in the middle of a chunked body") from exc
            body = b"".join(parts)
        elif "content-length" in fields:
            try:
                body = await reader.readexactly(int(fields["content-length"]))
            except asyncio.IncompleteReadError as exc:
                raise ConnectionError("closed in the middle of a body") from exc
        else:
            body = await reader.read(-1)
            keep_alive = False
    return Response(status, headers, body, keep_alive)


async def read_all(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bytes:
    chunks = []
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


async def connect(
    port: int, host: str = "127.0.0.1", *, rcvbuf: int = 0, sndbuf: int = 0, source: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection; fixed socket buffers (no kernel autotuning) keep backpressure tests exact.
    `source`: the local address to connect from (a client address of the loopback network)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        sock.bind((source, 0))
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    async with asyncio.timeout(TIMEOUT):
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return await asyncio.open_connection(sock=sock)


def shrink_buffers(writer: asyncio.StreamWriter, *, rcvbuf: int = 0, sndbuf: int = 0) -> None:
    """Fix the kernel buffers of an accepted connection (a backend's side)."""
    sock = writer.get_extra_info("socket")
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


async def request(
    port: int,
    path: str = "/",
    *,
    host: str = "example.com",
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    source: str = "",
) -> Response:
    """One request on a fresh connection (closed afterwards); `source`: the client address to send from."""
    reader, writer = await connect(port, source=source)
    try:
        writer.write(encode_request(path, host=host, method=method, headers=headers, body=body))
        return await read_response(reader, head=method == "HEAD")
    finally:
        writer.close()


async def upload_until_answered(port: int, *, host: str = "example.com") -> Response:
    """A PUT announcing a 256 MiB body, sent in 64 KiB pieces until the proxy answers (or stops reading): what
    a send timeout (the upstream not reading the upload) is answered with. Every wait is bounded."""
    reader, writer = await connect(port)
    try:
        writer.write(encode_request("/", host=host, method="PUT", headers=[("Content-Length", str(256 << 20))]))
        response_task = asyncio.ensure_future(read_response(reader))
        try:
            while not response_task.done():
                writer.write(b"u" * 65536)
                async with asyncio.timeout(5):
                    await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        return await response_task
    finally:
        writer.close()


def encode_request(
    path: str,
    *,
    host: str | None = "example.com",
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bool:
    """True once the peer closed (EOF or reset) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT, interval: float = 0.01) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


@contextlib.contextmanager
def logged_lines(proxy: Proxy) -> Iterator[list[dict]]:
    """The access log lines `proxy` writes inside the block, decoded: its log goes into a pipe a thread drains; the
    list is filled when the block ends (the log closed, so every line is written)."""
    from proxy.accesslog import AccessLog

    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    proxy.server.access_log = AccessLog(write_end, interval=0.01)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        proxy.server.access_log.close()
        os.close(write_end)
        reader.join(timeout=10)
        os.close(read_end)
    lines += (json.loads(line) for line in b"".join(chunks).splitlines())
