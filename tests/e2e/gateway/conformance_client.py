"""The client side of the end-to-end conformance runs: one request to a Gateway port, and what came back.

Like the upstream round tripper: no keep-alive (one connection per request), redirects not followed, the Host
header as the case gives it; HTTPS with the case's SNI against the certificate the suite generated (trusted
as the only root; the served certificate is compared with the expected one byte for byte instead of matching
names, since Go's and OpenSSL's wildcard rules differ for the upstream's "*.org").
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
import h2.config
import h2.connection
import h2.events
from conformance_grpc import call as grpc_call
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

TIMEOUT = 10.0  # seconds for one request (the slowest upstream case waits 1 s at the backend)


@dataclass
class Answer:
    """What a client saw: status 0 when nothing accepted the connection."""

    status: int
    headers: CIMultiDictProxy[str] | None = None
    echo: dict[str, Any] | None = None  # the echo pod's JSON, when a pod answered
    peer_certificate: bytes = b""  # DER, over HTTPS
    error: str = ""
    websocket_echo: bool = False
    grpc_status: int | None = None  # a gRPC call's status code (0: OK)

    def header(self, name: str) -> str | None:
        """All fields of that name joined with "," (as the upstream compares them), None when absent."""
        if self.headers is None or name not in self.headers:
            return None
        return ",".join(self.headers.getall(name))


def echo_of(headers: Any, body: bytes) -> dict[str, Any] | None:
    """The echo pod's JSON in an answer's body, None when something else answered."""
    if not headers.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and "pod" in parsed else None


class Client:
    """Requests to 127.0.0.1:<local port>; one session, a fresh connection per request."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.trusted: dict[bytes, ssl.SSLContext] = {}

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self.session

    def _context(self, ca_pem: bytes) -> ssl.SSLContext:
        found = self.trusted.get(ca_pem)
        if found is None:
            found = ssl.create_default_context(cadata=ca_pem.decode())
            found.check_hostname = False  # the served certificate is compared instead (see the module doc)
            self.trusted[ca_pem] = found
        return found

    async def send(self, *, local_port: int, path: str, host: str, method: str = "GET",
                   headers: dict[str, str] | None = None, https: bool = False, sni: str = "",
                   ca_pem: bytes = b"") -> Answer:
        scheme = "https" if https else "http"
        url = f"{scheme}://127.0.0.1:{local_port}{path}"
        fields = {"Host": host, **(headers or {})}
        options: dict[str, Any] = {}
        if https:
            options["ssl"] = self._context(ca_pem)
            options["server_hostname"] = sni
        try:
            async with self._session().request(
                method, URL(url, encoded=True), headers=fields, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT), skip_auto_headers=("Accept-Encoding", "User-Agent"),
                **options,
            ) as response:
                body = await response.read()
                certificate = b""
                if https and response.connection is not None and response.connection.transport is not None:
                    ssl_object = response.connection.transport.get_extra_info("ssl_object")
                    certificate = ssl_object.getpeercert(binary_form=True) if ssl_object else b""
                return Answer(response.status, response.headers, echo_of(response.headers, body), certificate)
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, ConnectionRefusedError):
                return Answer(0, error="connection refused")
            raise

    async def grpc(self, *, local_port: int, method: str, host: str = "",
                   metadata: dict[str, str] | None = None) -> Answer:
        """One unary call of the echo service (conformance_grpc.py) over h2c, `host` as its `:authority`: the
        call's status, and what the pod received as `echo` when it answered (the fields the HTTP echo's JSON
        has: pod, namespace, method POST, the call's path, its metadata as headers)."""
        answer = await asyncio.to_thread(grpc_call, f"127.0.0.1:{local_port}", method, authority=host,
                                         metadata=metadata, timeout=TIMEOUT)
        echo = None
        if answer.response is not None:
            headers: dict[str, list[str]] = {}
            for name, value in answer.response["headers"]:
                headers.setdefault(name, []).append(value)
            echo = {"pod": answer.response["pod"], "namespace": answer.response["namespace"], "method": "POST",
                    "path": answer.response["method"], "host": answer.response["authority"], "headers": headers}
        return Answer(200, echo=echo, error=answer.details, grpc_status=answer.code)

    async def h2c(self, *, local_port: int, path: str, host: str, headers: dict[str, str] | None = None) -> Answer:
        """A GET in HTTP/2 cleartext with prior knowledge (the upstream's H2CPriorKnowledgeProtocol), `host` as its
        `:authority`, on a fresh connection; the answer as `send` gives it."""
        return await asyncio.wait_for(self._h2(local_port, path, host, headers or {}), TIMEOUT)

    async def h2(self, *, local_port: int, path: str, host: str, sni: str, ca_pem: bytes,
                 headers: dict[str, str] | None = None) -> Answer:
        """A GET in HTTP/2 over TLS (the upstream's H2Protocol): a fresh connection with `sni` as its server name,
        h2 negotiated by ALPN (an answer with an error when the proxy chose another protocol), `host` as the
        request's `:authority` (another name than the SNI's: a request on a connection coalesced for another
        host, as a browser would send it)."""
        return await asyncio.wait_for(self._h2(local_port, path, host, headers or {}, sni=sni, ca_pem=ca_pem),
                                      TIMEOUT)

    async def _h2(self, local_port: int, path: str, host: str, headers: dict[str, str], *, sni: str = "",
                  ca_pem: bytes = b"") -> Answer:
        context = None
        if ca_pem:
            # A context of its own (the shared ones are aiohttp's, which offer no ALPN).
            context = ssl.create_default_context(cadata=ca_pem.decode())
            context.check_hostname = False  # the served certificate is compared instead (see the module doc)
            context.set_alpn_protocols(["h2"])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port, ssl=context,
                                                           server_hostname=sni if context is not None else None)
        except ConnectionRefusedError:
            return Answer(0, error="connection refused")
        certificate = b""
        if context is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object.selected_alpn_protocol() != "h2":
                writer.close()
                return Answer(0, error=f"ALPN chose {ssl_object.selected_alpn_protocol()!r}, not h2")
            certificate = ssl_object.getpeercert(binary_form=True) or b""
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
        try:
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            scheme = "https" if context is not None else "http"
            conn.send_headers(stream, [(":method", "GET"), (":scheme", scheme), (":authority", host),
                                       (":path", path), *((k.lower(), v) for k, v in headers.items())],
                              end_stream=True)
            writer.write(conn.data_to_send())
            status, fields, body = 0, CIMultiDict[str](), bytearray()
            done = False
            while not done:
                data = await reader.read(65536)
                if not data:
                    return Answer(status, error="the connection closed before the answer ended")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                        for name, value in event.headers:
                            if name == ":status":
                                status = int(value)
                            else:
                                fields.add(str(name), str(value))
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        done = done or event.stream_id == stream
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return Answer(status, error=f"GOAWAY {event.error_code!r}")
                writer.write(conn.data_to_send())
            conn.close_connection()
            writer.write(conn.data_to_send())
        finally:
            writer.close()
        return Answer(status, CIMultiDictProxy(fields), echo_of(fields, body), certificate)

    async def websocket(self, *, local_port: int, path: str, host: str) -> Answer:
        """The upstream's WebSocket check: a text and a binary message come back unchanged."""
        url = f"http://127.0.0.1:{local_port}{path}"
        async with self._session().ws_connect(URL(url, encoded=True), headers={"Host": host},
                                              timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT)) as socket:
            await socket.send_str("Websocket Support!")
            text = await asyncio.wait_for(socket.receive_str(), TIMEOUT)
            binary_message = bytes([1, 2, 3, 4, 5, 6, 7])
            await socket.send_bytes(binary_message)
            binary = await asyncio.wait_for(socket.receive_bytes(), TIMEOUT)
        return Answer(101, websocket_echo=text == "Websocket Support!" and binary == binary_message)
