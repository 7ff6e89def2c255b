"""Distributed tracing: W3C trace context on the request path, OpenTelemetry spans exported over OTLP/HTTP.

    request head ─▶ context (traceparent parsed as bytes, sampling decided, ours written upstream)
                    ─▶ ... the request ... ─▶ record: sampled? ─▶ Tracer.finish ─▶ bounded queue
                                                                                    │ (the loop stops here)
                    exporter thread: batch ─▶ otlp (protobuf, hand-encoded) ─▶ POST /v1/traces

`context` holds the pure byte-level parts (parsing, formatting, the ratio sampler), `tracer` what the
request path calls, `otlp` the protobuf encoding and `exporter` the thread that sends batches. The
request path never builds an object per request for tracing: an unsampled request costs a parse of the
incoming header (when there is one) and one header value cut from a pool of random hex digits; a sampled
one adds one tuple queued at the end (and its exemplar). The OpenTelemetry SDK is not used at all.
"""
