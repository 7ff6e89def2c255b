"""What the request path calls: `start` when a traced route matched, `finish` when a sampled request ends.

A request's trace context lives in three attributes of its head (proxy.http.head.RequestHead):
`traceparent` and `tracestate` as the client sent them (None: absent; set by the protocol, the fields
themselves are forwarded as they came unless tracing applies), and `trace`, the traceparent value this
proxy sends upstream (None: the request is not traced). `trace` carries everything the end needs: the
trace id, our span id and, in its flags, whether the request is sampled; the parent id is the client's
when the trace ids agree. So an unsampled request costs bytes only, and a sampled one one tuple at its end.

Sampling is parent-based: a valid incoming traceparent (when trusted, --trace-trust-incoming) decides by
its sampled flag; a new trace is sampled when the low 64 bits of its id fall under the ratio
(--trace-sample-ratio), as OpenTelemetry's TraceIdRatioBased sampler decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from proxy.tracing.context import clean_tracestate, parse_traceparent, random_bits, ratio_bound

if TYPE_CHECKING:
    from proxy.tracing.exporter import SpanExporter

_SEP = b": "
_CRLF = b"\r\n"
_LOW_64 = (1 << 64) - 1
_TRACE_FIELDS = frozenset((b"traceparent", b"tracestate"))


class TracedRequest(Protocol):
    """The request head attributes tracing reads and writes (proxy.http.head.RequestHead)."""

    fields: list[bytes]
    traceparent: bytes | None
    tracestate: bytes | None
    trace: bytes | None
    connection_names: set[bytes] | None

    def remove_header(self, name: bytes) -> None: ...


class Tracer:
    """One per process (per ProxyServer): the sampling settings, and the exporter spans go to."""

    __slots__ = ("bound", "trust", "by_default", "exporter")

    def __init__(self, *, ratio: float, trust_incoming: bool = True, by_default: bool = True,
                 exporter: SpanExporter | None = None) -> None:
        self.bound = ratio_bound(ratio)
        self.trust = trust_incoming
        # Whether routes without an annotation saying otherwise are traced (Route.tracing None).
        self.by_default = by_default
        self.exporter = exporter

    def start(self, request: TracedRequest) -> None:
        """Decide the request's trace context and add our traceparent (and a valid tracestate of a trace we
        continue) to the fields forwarded upstream; the client's own fields go, valid or not."""
        incoming = request.traceparent
        state = request.tracestate
        parent = None
        if incoming is not None:
            request.remove_header(b"traceparent")
            if self.trust:
                parent = parse_traceparent(incoming)
        if state is not None:
            request.remove_header(b"tracestate")
            state = clean_tracestate(state) if parent is not None else None
        if parent is None:
            bits = random_bits(128) or 1
            value = b"00-%032x-%016x-%s" % (bits, random_bits(64) or 1,
                                            b"01" if (bits & _LOW_64) < self.bound else b"00")
        else:
            trace_id, _, sampled = parent
            value = b"00-%s-%016x-%s" % (trace_id, random_bits(64) or 1, b"01" if sampled else b"00")
        request.trace = value
        request.tracestate = state
        names = request.connection_names
        if names and (b"traceparent" in names or b"tracestate" in names):
            request.connection_names = names - _TRACE_FIELDS  # a client's Connection header never drops ours
        fields = request.fields
        fields += (b"traceparent", _SEP, value, _CRLF)
        if state is not None:
            fields += (b"tracestate", _SEP, state, _CRLF)

    def finish(self, span: tuple[Any, ...]) -> None:
        """Queue the span of a sampled request (the record proxy.tracing.otlp.encode_span reads)."""
        exporter = self.exporter
        if exporter is not None:
            exporter.add(span)


__all__ = ["TracedRequest", "Tracer"]
