"""What the request path calls: `start` when a traced route matched, `finish` when a sampled request ends.

A request's trace context lives in three attributes of its head (proxy.http.head.RequestHead):
`traceparent` and `tracestate` as the client sent them (None: absent; set by the protocol, the fields
themselves are forwarded as they came unless tracing applies), and `trace`, the traceparent value this
proxy sends upstream (None: the request is not traced), which the pipeline writes as the upstream head's last
field (two items of its request list, the name with its line break and the value, rather than four in `fields` copied
into it: fewer pieces to join per request). `trace` carries everything the end needs: the
trace id, our span id and, in its flags, whether the request is sampled; the parent id is the client's
when the trace ids agree. So an unsampled request costs bytes only, and a sampled one one tuple at its end.
A new trace's traceparent value is not formatted: the protocol's id pool holds it around the request's ids
once the server asked for that layout (proxy.http.ids.IdPool.lay_out_traceparents, done with the Tracer),
so it is one slice, and sampling compares its first digits with the bound's.

Sampling is parent-based: a valid incoming traceparent (when trusted, --trace-trust-incoming) decides by
its sampled flag; a new trace is sampled when the high 64 bits of its id fall under ratio x 2**64
(--trace-sample-ratio): OpenTelemetry's TraceIdRatioBased rule, on the id's other half (comparing the hex
digits at the start of the id costs the request path less than cutting out the ones at its end; the ids are
uniformly random either way, and services behind a parent-based sampler follow the flag we send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from proxy.tracing.context import (
    SAMPLED_AT,
    TRACE_ID_AT,
    TRACEPARENT_LENGTH,
    clean_tracestate,
    parse_traceparent,
    ratio_bound,
)

if TYPE_CHECKING:
    from proxy.tracing.exporter import SpanExporter

_SEP = b": "
_CRLF = b"\r\n"
# The ids' length ("<trace id>-<span id>": 32 + "-" + 16), and where a new trace's traceparent value ends
# (from the request's position in the id pool: see proxy.http.ids).
IDS = 49
_VALUE_END = TRACEPARENT_LENGTH - TRACE_ID_AT
_TRACE_FIELDS = frozenset((b"traceparent", b"tracestate"))


class TracedRequest(Protocol):
    """The request head attributes tracing reads and writes (proxy.http.head.RequestHead)."""

    fields: list[bytes]
    traceparent: bytes | None
    tracestate: bytes | None
    trace: bytes | None
    id_pool: bytes  # where the protocol's ids for this request are (proxy.http.ids)
    id_at: int
    connection_names: set[bytes] | None

    def remove_header(self, name: bytes) -> None: ...


class Tracer:
    """One per process (per ProxyServer): the sampling settings, and the exporter spans go to."""

    __slots__ = ("bound", "trust", "by_default", "exporter", "sampled_below")

    def __init__(self, *, ratio: float, trust_incoming: bool = True, by_default: bool = True,
                 exporter: SpanExporter | None = None) -> None:
        self.bound = ratio_bound(ratio)
        # The bound as a traceparent's start, "00-" and 16 hex digits, compared with a new trace's traceparent value
        # (lower-case hex digits compare as the numbers do, so this compares the trace id's high 64 bits with the
        # bound; ratio 1: a value above every id).
        self.sampled_below = b"00-%016x" % self.bound if self.bound < 1 << 64 else b"00-g"
        self.trust = trust_incoming
        # Whether routes without an annotation saying otherwise are traced (Route.tracing None).
        self.by_default = by_default
        self.exporter = exporter

    def start(self, request: TracedRequest) -> None:
        """Decide the request's trace context: `trace`, our traceparent value, which the pipeline writes as the
        upstream head's last field (proxy.http.pipeline), and a valid tracestate of a trace we continue added to
        the fields forwarded; the client's own traceparent and tracestate go, valid or not."""
        if request.traceparent is None and request.tracestate is None:
            # The usual case, kept short: a new trace whose ids are the ones the protocol made for the request
            # (its generated request id and 16 more digits), whose unsampled traceparent value the pool holds
            # around them (see proxy.http.ids). (proxy.http.pipeline inlines these lines: keep the two alike.)
            at = request.id_at
            value = request.id_pool[at - TRACE_ID_AT : at + _VALUE_END]
            # (below the bound: the trace id's first 16 digits, its high 64 bits, are; see ratio_bound)
            if value < self.sampled_below:
                value = value[:SAMPLED_AT] + b"1"
            request.trace = value
            return
        self._start_with_context(request)

    def _start_with_context(self, request: TracedRequest) -> None:
        """`start` for a request carrying trace context of its own (valid or not)."""
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
        at = request.id_at
        if parent is None:  # as in `start`
            value = request.id_pool[at - TRACE_ID_AT : at + _VALUE_END]
            if value < self.sampled_below:
                value = value[:SAMPLED_AT] + b"1"
        else:
            trace_id, _, sampled = parent  # our span id: the digits after the request's id
            value = b"00-" + trace_id + request.id_pool[at + 32 : at + IDS] + (b"-01" if sampled else b"-00")
        request.trace = value
        request.tracestate = state
        names = request.connection_names
        if names and (b"traceparent" in names or b"tracestate" in names):
            request.connection_names = names - _TRACE_FIELDS  # a client's Connection header never drops ours
        if state is not None:
            request.fields += (b"tracestate", _SEP, state, _CRLF)

    def finish(self, span: tuple[Any, ...]) -> None:
        """Queue the span of a sampled request (the record proxy.tracing.otlp.encode_span reads)."""
        exporter = self.exporter
        if exporter is not None:
            exporter.add(span)


__all__ = ["IDS", "TracedRequest", "Tracer"]
