"""Echo pods that answer like the conformance suite's echo server (gateway-api-conformance-images' echo-basic).

The upstream tests read what a backend received from its JSON answer: the request URI (`path`, query
included), `host`, `method`, `proto`, `headers` (Go's `http.Header`: canonical names, one list entry per
header line, `Host` not among them), and the `namespace` and `pod` it runs as. The same server honours
`?delay=<Go duration>` (answers that much later: the timeout tests) and the `X-Echo-Set-Header:
Name:value,Name2:value2` request header (fields it adds to its answer: the response header tests), and
echoes WebSocket messages on `/ws`. Every request is also kept (`seen`), so mirror tests can find the
copies a pod received. A pod given a server context serves HTTPS (the suite's `tls-backend`) and reports the
TLS server name the client sent as `tls.serverName`, as echo-basic does. A pod started with `h2c` also serves
HTTP/2 cleartext (prior knowledge, written with `h2`) on a second port, the upstream echo's 3001 (the one a
Service port with appProtocol kubernetes.io/h2c targets: HTTPRouteBackendProtocolH2C), with the same JSON
(`proto` "HTTP/2.0"); that port speaks nothing else.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from aiohttp import WSMsgType, web

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
# The longest ?delay= honoured: a test cannot hold a pod longer than this.
MAX_DELAY = 10.0
# The upstream echo's h2c port (conformance/base/manifests.yaml: infra-backend-v1's second-port targets it).
H2C_POD_PORT = 3001


def canonical(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: "x-header-add" -> "X-Header-Add" (left alone if not a token)."""
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def duration(text: str) -> float:
    """A Go duration such as "1s", "500ms" or "1m30s", in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


@dataclass(frozen=True)
class Received:
    """One request as a pod saw it."""

    uri: str
    method: str
    headers: dict[str, list[str]]


class EchoPod:
    """One pod of a conformance backend Deployment: `name` starts with its Service's name, as pod names do."""

    def __init__(self, *, service: str, namespace: str, name: str, address: str,
                 tls: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.tls = tls
        self.namespace = namespace
        self.name = name
        self.address = address
        self.port = 0
        self.h2c_port = 0  # the h2c port (0: none)
        self.seen: list[Received] = []
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._h2c: asyncio.Server | None = None
        self.h2c_connections: set[asyncio.Transport] = set()

    async def start(self, port: int = 0, *, h2c: bool = False, h2c_port: int = 0) -> EchoPod:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, port, ssl_context=self._server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]
        if h2c:
            self._h2c = await asyncio.get_running_loop().create_server(lambda: _H2cEcho(self), self.address, h2c_port)
            self.h2c_port = self._h2c.sockets[0].getsockname()[1]
        return self

    def port_for(self, number: int) -> int:
        """The local port serving the data's pod port `number`: the h2c one for 3001 (when served), else this pod's
        HTTP port, whatever the number."""
        return self.h2c_port if number == H2C_POD_PORT and self.h2c_port else self.port

    def _server_context(self) -> ssl.SSLContext | None:
        """The pod's context, with an SNI callback noting the name on the connection's SSL object."""
        if self.tls is None:
            return None

        def remember(ssl_object: Any, name: str | None, _context: Any) -> None:
            ssl_object.pod_server_name = name or ""

        self.tls.sni_callback = remember
        return self.tls

    async def stop(self) -> None:
        self._stopping.set()  # delayed answers go now instead of holding up the shutdown
        if self._h2c is not None:
            self._h2c.close()
            for transport in self.h2c_connections:
                transport.abort()
            await self._h2c.wait_closed()
            self._h2c = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def received(self, marker: str) -> list[Received]:
        """The requests whose URI contains `marker`."""
        return [item for item in self.seen if marker in item.uri]

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower() != "host":
                headers.setdefault(canonical(name), []).append(value)
        self.seen.append(Received(request.raw_path, request.method, headers))
        if request.path == "/ws" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        delay = request.query.get("delay")
        if delay:
            try:
                await asyncio.wait_for(self._stopping.wait(), min(duration(delay), MAX_DELAY))
            except TimeoutError:
                pass
        body: dict[str, Any] = {
            "path": request.raw_path,
            "host": request.host,
            "method": request.method,
            "proto": f"HTTP/{request.version.major}.{request.version.minor}",
            "headers": headers,
            "namespace": self.namespace,
            "pod": self.name,
        }
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        if ssl_object is not None:
            body["tls"] = {"serverName": getattr(ssl_object, "pod_server_name", "")}
        response = web.json_response(body)
        response.headers["X-Content-Type-Options"] = "nosniff"
        for listed in request.headers.getall("X-Echo-Set-Header", []):
            for item in listed.split(","):
                name, _, value = item.strip().partition(":")
                if not name:
                    continue
                if name in response.headers:
                    response.headers[name] += "," + value.strip()
                else:
                    response.headers[name] = value
        return response

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await socket.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await socket.send_bytes(message.data)
        return socket


class _H2cEcho(asyncio.Protocol):
    """One h2c connection to a pod's h2c port: every request answered with the echo JSON once it has ended."""

    def __init__(self, pod: EchoPod) -> None:
        self.pod = pod
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                         header_encoding="latin-1"))
        self.heads: dict[int, list[tuple[str, str]]] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pod.h2c_connections.add(self.transport)  # type: ignore[arg-type]
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pod.h2c_connections.discard(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # not HTTP/2 (an HTTP/1.1 request): the connection goes
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.heads[event.stream_id] = list(event.headers)  # type: ignore[arg-type]
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.heads:
                self._answer(event.stream_id, self.heads.pop(event.stream_id))
        self._flush()

    def _answer(self, stream_id: int, head: list[tuple[str, str]]) -> None:
        pseudo = {name: value for name, value in head if name.startswith(":")}
        headers: dict[str, list[str]] = {}
        for name, value in head:
            if not name.startswith(":"):
                headers.setdefault(canonical(name), []).append(value)
        self.pod.seen.append(Received(pseudo.get(":path", ""), pseudo.get(":method", ""), headers))
        body = json.dumps({
            "path": pseudo.get(":path", ""),
            "host": pseudo.get(":authority", ""),
            "method": pseudo.get(":method", ""),
            "proto": "HTTP/2.0",
            "headers": headers,
            "namespace": self.pod.namespace,
            "pod": self.pod.name,
        }).encode()
        self.conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/json"),
                                           ("content-length", str(len(body)))])
        self.conn.send_data(stream_id, body, end_stream=True)  # small: within the initial windows

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
