"""gRPC echo pods and calls for the end-to-end GRPCRoute conformance runs, as the upstream's echo-basic (with
GRPC_ECHO_SERVER set) and its conformance gRPC client (conformance/utils/grpc/grpc.go) do them.

The service is gateway_api_conformance.echo_basic.grpcecho.GrpcEcho of the upstream's grpcecho.proto: Echo and
EchoTwo answer an EchoResponse whose assertions carry the fully qualified method, the request's metadata (one
Header per field) and the pod's context (namespace, service, pod name), which is what the upstream's assertions
read; `authority` stays empty (grpcio's Python server does not expose `:authority`; no upstream test reads it).
EchoThree is intentionally unimplemented (UNIMPLEMENTED from the pod itself). The messages are encoded here by
hand (string and message fields only: no protoc, no generated code): `encode_response` and `decode_response`.

The pods are real grpcio servers (their own threads) on the pod's loopback address, speaking h2c; a call is a
real grpcio client on a fresh insecure channel (one connection per call, as the upstream's weight sampler's fresh
DefaultClient), with the case's `:authority` (grpc.default_authority) and metadata.
"""

from __future__ import annotations

import asyncio
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

ECHO = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
TIMEOUT = 10.0  # seconds for one call (as the HTTP client's)
TLS_POD_PORT = 8443  # the pod port of gRPC over TLS in the data (the upstream's echo-basic)


# ---------------------------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2); proto3 leaves empty ones out."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload if payload else b""


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a message, in order (other wire types skipped)."""
    found: list[tuple[int, bytes]] = []
    at = 0

    def varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        elif wire == 2:
            length = varint()
            found.append((number, data[at:at + length]))
            at += length
        else:
            raise ValueError(f"wire type {wire}")
    return found


def encode_response(method: str, headers: list[tuple[str, str]], authority: str, *, namespace: str,
                    service: str, pod: str) -> bytes:
    """EchoResponse{assertions: Assertions{fully_qualified_method=1, headers=2 (Header{key=1, value=2}),
    authority=3, context=4 (Context{namespace=1, ingress=2, service_name=3, pod=4})}}."""
    context = _field(1, namespace.encode()) + _field(3, service.encode()) + _field(4, pod.encode())
    assertions = (_field(1, method.encode())
                  + b"".join(_field(2, _field(1, k.encode()) + _field(2, v.encode())) for k, v in headers)
                  + _field(3, authority.encode()) + _field(4, context))
    return _field(1, assertions)


def decode_response(data: bytes) -> dict[str, Any]:
    """An EchoResponse as a dict: method, headers [(key, value)], authority, namespace, service, pod."""
    found: dict[str, Any] = {"method": "", "headers": [], "authority": "", "namespace": "", "service": "",
                             "pod": ""}
    for number, assertions in _fields(data):
        if number != 1:
            continue
        for part, value in _fields(assertions):
            if part == 1:
                found["method"] = value.decode()
            elif part == 2:
                entry = dict(_fields(value))
                found["headers"].append((entry.get(1, b"").decode(), entry.get(2, b"").decode()))
            elif part == 3:
                found["authority"] = value.decode()
            elif part == 4:
                context = dict(_fields(value))
                found["namespace"] = context.get(1, b"").decode()
                found["service"] = context.get(3, b"").decode()
                found["pod"] = context.get(4, b"").decode()
    return found


# ---------------------------------------------------------------------------------------------- pods


@dataclass(frozen=True)
class Call:
    """One call as a pod saw it."""

    method: str
    metadata: tuple[tuple[str, str], ...]

    @property
    def uri(self) -> str:
        return self.method  # a gRPC call's path


@dataclass
class GrpcEchoPod:
    """One pod of a gRPC conformance backend (the same interface as conformance_echo.EchoPod)."""

    service: str
    namespace: str
    name: str
    address: str
    # (certificate chain PEM, key PEM): the pod also serves gRPC over TLS (ALPN h2) on `tls_port`, as the
    # upstream's echo-basic does on 8443 with TLS_SERVER_CERT set.
    tls: tuple[bytes, bytes] | None = None
    port: int = 0
    tls_port: int = 0
    seen: list[Call] = field(default_factory=list)
    server: grpc.Server | None = None

    async def start(self, port: int = 0, tls_port: int = 0) -> GrpcEchoPod:
        """Serve on the address and port (0: any), and over TLS on tls_port; OSError when a port is taken there."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                             options=[("grpc.so_reuseport", 0)])  # a taken port must fail, not be shared
        server.add_generic_rpc_handlers((_Handler(self),))
        try:
            bound = server.add_insecure_port(f"{self.address}:{port}")
            secure = 0
            if bound and self.tls is not None:
                chain, key = self.tls
                secure = server.add_secure_port(f"{self.address}:{tls_port}",
                                                grpc.ssl_server_credentials([(key, chain)]))
        except RuntimeError as error:  # grpcio >= 1.5x raises where older ones returned 0
            raise OSError(f"{self.address}: {error}") from None
        if not bound or (self.tls is not None and not secure):
            raise OSError(f"{self.address}:{port}/{tls_port} is taken")
        server.start()
        self.server, self.port, self.tls_port = server, bound, secure
        return self

    def port_for(self, number: int) -> int:
        """The local port serving the data's pod port `number` (8443: the TLS one)."""
        return self.tls_port if number == TLS_POD_PORT and self.tls_port else self.port

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(lambda: self.server.stop(grace=None).wait(5) if self.server else None)
            self.server = None

    def received(self, marker: str) -> list[Call]:
        return [call for call in self.seen if any(marker in value for _, value in call.metadata)]

    def echo(self, method: str, context: grpc.ServicerContext) -> bytes:
        metadata = tuple((key, value if isinstance(value, str) else value.decode("latin-1"))
                         for key, value in context.invocation_metadata())
        self.seen.append(Call(method, metadata))
        authority = next((value for key, value in metadata if key == ":authority"), "")
        return encode_response(method, [(k, v) for k, v in metadata if not k.startswith(":")], authority,
                               namespace=self.namespace, service=self.service, pod=self.name)


class _Handler(grpc.GenericRpcHandler):
    """Echo and EchoTwo of the echo service; anything else (EchoThree) unimplemented."""

    METHODS = frozenset(f"/{ECHO}/{name}" for name in ("Echo", "EchoTwo"))

    def __init__(self, pod: GrpcEchoPod) -> None:
        self.pod = pod

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method  # type: ignore[attr-defined]
        if method not in self.METHODS:
            return None
        return grpc.unary_unary_rpc_method_handler(lambda _request, context: self.pod.echo(method, context))


# ---------------------------------------------------------------------------------------------- client


@dataclass(frozen=True)
class GrpcAnswer:
    """What a gRPC client saw: the status code (grpc.StatusCode's number), and the decoded EchoResponse when OK."""

    code: int
    details: str = ""
    response: dict[str, Any] | None = None


def call(target: str, method: str, *, authority: str = "", metadata: dict[str, str] | None = None,
         timeout: float = TIMEOUT) -> GrpcAnswer:
    """One unary call of the echo service on a fresh channel (blocking: run it in a thread)."""
    options = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
    if authority:
        options.append(("grpc.default_authority", authority))
    sent = tuple((key.lower(), value) for key, value in (metadata or {}).items())  # gRPC metadata keys: lowercase
    with grpc.insecure_channel(target, options=options) as channel:
        stub = channel.unary_unary(f"/{ECHO}/{method}", request_serializer=None, response_deserializer=None)
        try:
            answer = stub(b"", metadata=sent, timeout=timeout)
        except grpc.RpcError as error:
            return GrpcAnswer(error.code().value[0], error.details() or "")
    return GrpcAnswer(0, response=decode_response(answer))
