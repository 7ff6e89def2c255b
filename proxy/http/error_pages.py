"""ingress-nginx's custom error pages: another Service answers for a route's errors (`Route.errors`).

ingress-nginx's `default-backend` annotation names a Service that answers when the route's Service has no
ready endpoints (its 503), and, with `custom-http-errors`, the answers with the listed statuses (the pod's,
through proxy_intercept_errors, and nginx's own 502/504). Its custom error location sends the request to
that Service with path "/", the original method and header fields (not the ConfigMap's proxy-set-headers: that
location sets its own fields, so inherits none) plus X-Code, X-Format (Accept),
X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and X-Request-ID (a client's fields of
those names replaced); the client gets whatever that Service answers (`error_page CODE = @location`: its status,
not CODE). Of the forwarded fields that location sets only X-Forwarded-For, to `$remote_addr` (the client's address,
a trusted proxy's word for it included), and Host, to `$best_http_host`: the proxy's X-Forwarded-Proto, -Port, -Host
and X-Real-IP are not sent, and the client's own, which nginx passes as they came, are (nginx.tmpl CUSTOM_ERRORS).

Only requests of routes with error pages get here: the pipeline puts an `Intercept` first among their
response filters. An answer is only replaced while nothing of it reached the client and the request body
was read whole (a body still arriving cannot be sent to the error backend again): otherwise it passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.http import headers as h
from proxy.upstream.errors import InterceptedStatus, UpstreamError

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.routing.model import ErrorPages
    from proxy.routing.request import Request, Response
    from proxy.upstream.cluster import Upstream

_CRLF = b"\r\n"
# The request body is not sent again to the error backend (see the module docstring): nor is its framing.
_BODY_FIELDS = {b"content-length"}
# The fields the error location sets (proxy_set_header replaces a client's field of the same name); X-Request-ID and
# X-Forwarded-For never reach `fields` (the request's own reader keeps them aside).
_SET_HERE = {b"x-code", b"x-format", b"x-original-uri", b"x-namespace", b"x-ingress-name", b"x-service-name",
             b"x-service-port"}


class Intercept:
    """The response filter of a route with error pages: an answer with one of the listed statuses is dropped
    (InterceptedStatus, handled by Exchange.fail) so the error backend answers instead."""

    __slots__ = ("pages",)
    order = -200

    def __init__(self, pages: ErrorPages) -> None:
        self.pages = pages

    def on_response(self, request: Request, response: Response) -> None:
        pages = self.pages
        if response.status in pages.codes and _replayable(request) and _target(request, pages) is not None:  # type: ignore[arg-type]  # the exchange
            raise InterceptedStatus(response.status)


def _replayable(ex: Exchange) -> bool:
    return ex.req_done or not ex.has_body


def _target(ex: Exchange, pages: ErrorPages) -> Upstream | None:
    """The error backend, when it has ready endpoints."""
    runtime = ex.client.server.holder.current
    upstream = runtime.upstreams.get(pages.cluster) if runtime is not None else None
    return upstream if upstream is not None and upstream.pools else None


def divert(ex: Exchange, error: UpstreamError) -> bool:
    """Exchange.fail: send the request to the route's error backend instead of answering `error`, when its
    status is one the route's error pages answer; True when under way."""
    if ex.resp_head_done and not isinstance(error, InterceptedStatus):
        return False
    for response_filter in ex.response_filters:
        if type(response_filter) is Intercept:
            break
    else:
        return False
    pages = response_filter.pages
    status = error.answer if isinstance(error, InterceptedStatus) else error.status
    if status not in pages.codes or not _replayable(ex):
        return False
    return send(ex, pages, status, body=False)


def _forwarded(ex: Exchange) -> bytes:
    """The forwarded fields the route's pod would get (the pipeline's): with trusted forwarded headers
    (use-forwarded-headers, PROXY protocol...) the real client's address, not the connection's."""
    client = ex.client
    trust = client.server.trust
    if trust is not None:
        return trust.fields(ex, ex.authority or b"")[0]
    if ex.forwarded_for is None:
        return client.forwarded
    return (b"X-Forwarded-For: " + ex.forwarded_for + b", " + client.client_ip
            + client.forwarded[client.forwarded_ip_end :])


def _error_location_fields(ex: Exchange) -> bytes:
    """nginx.tmpl's custom error location: `X-Forwarded-For $remote_addr` (the client's address, as a trusted proxy
    names it) and no other forwarded field of the proxy's; the client's own X-Forwarded-Proto/-Host/-Port and
    X-Real-IP pass as they came (proxy_pass_request_headers)."""
    parts = [b"X-Forwarded-For: ", ex.client_ip, _CRLF]
    passed = ex.forwarded_in
    if passed is not None:
        for index in range(0, len(passed), 2):
            parts += (passed[index], b": ", passed[index + 1], _CRLF)
    return b"".join(parts)


def send(ex: Exchange, pages: ErrorPages, status: int, *, body: bool) -> bool:
    """Send the request to the error backend with the X-Code fields of `status`; `body`: the request body (still
    to come, or in up_out) goes too (the pipeline's 503, decided before any of it was sent). False when the error
    backend has no ready endpoints either (the original answer stands)."""
    upstream = _target(ex, pages)
    if upstream is None:
        return False
    accept = ex.header(b"accept")
    # proxy-set-headers: the route's location sets them, the error location does not
    fields = h.drop_named(ex.fields, _SET_HERE | pages.unset)
    if not body:
        fields = h.drop_named(fields, _BODY_FIELDS)
        ex.up_out = []
        ex.chunked = False
        forwarded = _error_location_fields(ex)
        trust = ex.client.server.trust
        if trust is not None and ex.authority:  # Host $best_http_host: a trusted X-Forwarded-Host's
            best_host = trust.fields(ex, ex.authority)[1]
            if best_host != ex.authority:
                fields = [*h.drop_field(fields, b"host"), b"Host", b": ", best_host, _CRLF]
    else:
        # The pipeline's 503 (no endpoints): the route's own location sends it (a custom-default-backend upstream).
        forwarded = _forwarded(ex)
        if ex.connection_names:
            fields = h.drop_named(fields, ex.connection_names)
    head = [ex.method, b" / HTTP/1.1\r\n", *fields, pages.fields, b"X-Code: %d\r\n" % status]
    if accept:
        head += (b"X-Format: ", accept, _CRLF)
    if ex.trace is not None:  # a traced route: our traceparent (the pipeline writes it outside `fields`)
        head += (b"traceparent: ", ex.trace, _CRLF)
    head += (b"X-Original-URI: ", ex.target, b"\r\nX-Request-ID: ", ex.request_id, _CRLF, forwarded)
    head.append(b"Transfer-Encoding: chunked\r\n\r\n" if body and ex.chunked else _CRLF)
    ex.response_filters = ()  # the error location intercepts nothing (proxy_intercept_errors off)
    ex.resp_head_done = False
    ex.status = 0
    ex.upstream_time = -1.0
    ex.replay = None
    policy = ex.policy
    if policy is not None:  # the route's retries and limits are over: the error backend gets one plain attempt
        ex.policy = None
        policy.done()
    ex.start(upstream, head, retries=1)
    if ex.conn is not None:
        ex.flush_upstream()  # an idle connection was taken: nothing else would write the request now
    return True
