"""A real OTLP/HTTP trace receiver for tests: an aiohttp app that decodes what it is sent with the official
`opentelemetry-proto` package (so the proxy's hand-written encoding is checked by someone else's decoder)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

TIMEOUT = 10.0


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


@dataclass
class Received:
    """One span as the collector got it, with its resource and scope."""

    span: Span
    resource: dict[str, Any]
    scope: tuple[str, str]

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: value_of(kv.value) for kv in self.span.attributes}

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()


class Collector:
    """POST /v1/traces (application/x-protobuf): every span is kept in `spans`; `status` other than 200 refuses."""

    def __init__(self, *, status: int = 200) -> None:
        self.status = status
        self.spans: list[Received] = []
        self.requests = 0
        self.content_types: set[str] = set()
        self.port = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Collector:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        self.content_types.add(request.content_type)
        if self.status != 200:
            return web.Response(status=self.status, text="refused")
        message = ExportTraceServiceRequest.FromString(body)
        for resource_spans in message.resource_spans:
            resource = {kv.key: value_of(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                scope = (scope_spans.scope.name, scope_spans.scope.version)
                self.spans.extend(Received(span, resource, scope) for span in scope_spans.spans)
        self._changed.set()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Received]:
        """Wait until at least `count` spans arrived; returns them all."""
        async with asyncio.timeout(timeout):
            while len(self.spans) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.spans
