"""What the request path calls: `start` when a traced route matched, `finish` when a sampled request ends.

A request's trace context lives in three attributes of its head (proxy.http.head.RequestHead):
`traceparent` and `tracestate` as the client sent them (None: absent; set by the protocol, the fields
themselves are forwarded as they came unless tracing applies), and `trace`, the traceparent value this
proxy sends upstream (None: the request is not traced). `trace` carries everything the end needs: the
trace id, our span id and, in its flags, whether the request is sampled; the parent id is the client's
when the trace ids agree. So an unsampled request costs bytes only, and a sampled one one tuple at its end.

Sampling is parent-based: a valid incoming traceparent (when trusted, --trace-trust-incoming) decides by
its sampled flag; a new trace is sampled when the high 64 bits of its id fall under ratio x 2**64
(--trace-sample-ratio): OpenTelemetry's TraceIdRatioBased rule, on the id's other half (comparing the hex
digits at the start of the id costs the request path less than cutting out the ones at its end; the ids are
uniformly random either way, and services behind a parent-based sampler follow the flag we send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from proxy.tracing.context import clean_tracestate, parse_traceparent, ratio_bound

if TYPE_CHECKING:
    from proxy.tracing.exporter import SpanExporter

_SEP = b": "
_CRLF = b"\r\n"
# A new trace's traceparent value from its ids ("<trace id>-<span id>"), sampled or not (one formatting operation
# measured fewer instructions than two concatenations).
NEW_SAMPLED = b"00-%s-01"
NEW_UNSAMPLED = b"00-%s-00"
# The ids' length: 32 + "-" + 16.
IDS = 49
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

    __slots__ = ("bound", "trust", "by_default", "exporter", "bound_hex")

    def __init__(self, *, ratio: float, trust_incoming: bool = True, by_default: bool = True,
                 exporter: SpanExporter | None = None) -> None:
        self.bound = ratio_bound(ratio)
        # The bound as 16 hex digits, compared with a new trace id in hex (lower-case hex digits compare as the
        # numbers do, so this compares its high 64 bits with the bound; ratio 1: a value above every id).
        self.bound_hex = b"%016x" % self.bound if self.bound < 1 << 64 else b"g"
        self.trust = trust_incoming
        # Whether routes without an annotation saying otherwise are traced (Route.tracing None).
        self.by_default = by_default
        self.exporter = exporter

    def start(self, request: TracedRequest) -> None:
        """Decide the request's trace context and add our traceparent (and a valid tracestate of a trace we
        continue) to the fields forwarded upstream; the client's own fields go, valid or not."""
        if request.traceparent is None and request.tracestate is None:
            # The usual case, kept short: a new trace whose ids are the ones the protocol made for the request
            # (its generated request id and 16 more digits, "<trace id>-<span id>"; see proxy.http.ids).
            # (proxy.http.pipeline inlines these lines: keep the two alike.)
            at = request.id_at
            ids = request.id_pool[at : at + IDS]
            # (ids < bound: its first 16 digits, the trace id's high 64 bits, are below the bound's 16; see ratio_bound)
            value = request.trace = (NEW_SAMPLED if ids < self.bound_hex else NEW_UNSAMPLED) % ids
            request.fields += (b"traceparent", _SEP, value, _CRLF)
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
        ids = request.id_pool[at : at + IDS]  # as in `start`
        if parent is None:
            value = (NEW_SAMPLED if ids < self.bound_hex else NEW_UNSAMPLED) % ids
        else:
            trace_id, _, sampled = parent
            value = b"00-" + trace_id + ids[32:] + (b"-01" if sampled else b"-00")
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


__all__ = ["IDS", "NEW_SAMPLED", "NEW_UNSAMPLED", "TracedRequest", "Tracer"]
