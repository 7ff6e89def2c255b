"""Responses the proxy writes itself: error pages and status lines, and how they are logged.

Answers the proxy gives itself (nginx-like, each logged once at debug for 4xx and
warning for 5xx, with the request id that is also in the body and X-Request-ID):

* 400 malformed request line or header, NUL bytes, Content-Length with
  Transfer-Encoding, duplicate or invalid Content-Length, a Transfer-Encoding other
  than ``chunked``, duplicate Host, missing Host on HTTP/1.1, a path that climbs
  above ``/`` or carries a broken escape; the connection is closed.
* 414 request line (URI) longer than ``max_request_line`` (as nginx); 431 header
  fields over ``max_header_bytes`` in total or more than ``max_headers`` (RFC 6585,
  where nginx says 400 "Request Header Or Cookie Too Large"); connection closed.
* 405 CONNECT; 505 an HTTP version other than 1.0/1.1; connection closed.
* 408 headers not complete within ``client_header_timeout`` of their first byte, or
  a request body stalled that long; connection closed. An idle keep-alive
  connection is closed silently after ``client_keepalive_timeout`` (and a new
  connection that sends nothing, after ``client_header_timeout``).
* gRPC requests (Content-Type application/grpc*) get these answers as gRPC errors: HTTP 200 with
  ``grpc-status`` (and ``grpc-message``) in the head, a trailers-only response (`grpc_error_response`).
* 404 no route, 503 no configuration / unknown cluster / no endpoints, 502 connect
  failures and broken upstream responses, 504 upstream read timeout, 500 a rule whose
  backend cannot be served, 3xx and 421 from filters: the client connection stays open
  when the request was fully read.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from random import Random, SystemRandom
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.upstream.errors import UpstreamError

logger = logging.getLogger("pyngress.proxy")

REASONS: dict[int, bytes] = {status.value: status.phrase.encode() for status in HTTPStatus}
REASONS[499] = b"Client Closed Request"

# Public so the hot path can try ``STATUS_PREFIXES.get(status)`` inline before calling status_prefix.
STATUS_PREFIXES: dict[int, bytes] = {}
_STATUS_PREFIX = STATUS_PREFIXES


def status_prefix(status: int) -> bytes:
    """``b"HTTP/1.1 200 "``, cached per status code."""
    prefix = _STATUS_PREFIX.get(status)
    if prefix is None:
        prefix = b"HTTP/1.1 %d " % status
        if 100 <= status <= 999:
            _STATUS_PREFIX[status] = prefix
    return prefix


def error_response(
    status: int,
    request_id: bytes,
    *,
    close: bool,
    http10: bool = False,
    detail: str = "",
    head_only: bool = False,
    location: bytes = b"",
    fields: bytes = b"",
) -> bytes:
    """A short text/plain error naming the request id, so a user can quote it in a bug report.

    204 and 304 have no content (RFC 9110): neither body nor Content-Type and Content-Length."""
    reason = REASONS.get(status, b"Error")
    empty = status == 204 or status == 304
    body = b"%d %s\n" % (status, reason)
    if detail:
        body += detail.encode("utf-8", "replace") + b"\n"
    body += b"request id: " + request_id + b"\n"
    if close:
        connection = b"Connection: close\r\n"
    elif http10:
        connection = b"Connection: keep-alive\r\n"
    else:
        connection = b""
    head = b"".join(
        (
            status_prefix(status),
            reason,
            b"\r\n" if empty else b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            b"Location: " + location + b"\r\n" if location else b"",
            fields,
            b"Cache-Control: no-store\r\nX-Request-ID: ",
            request_id,
            b"\r\n",
            connection,
            b"\r\n",
        )
    )
    return head if head_only or empty else head + body


# gRPC status codes of the proxy's own answers to gRPC requests: gRPC's "HTTP to gRPC Status Code Mapping"
# (doc/http-grpc-status-mapping.md), except that a timeout is DEADLINE_EXCEEDED (4) as Envoy answers its own
# timeouts; statuses not listed are UNKNOWN (2).
GRPC_STATUSES = {400: 13, 401: 16, 403: 7, 404: 12, 408: 4, 413: 8, 429: 14, 431: 8, 500: 13, 501: 12, 502: 14,
                 503: 14, 504: 4}
_GRPC_CONTENT_TYPE = b"application/grpc"
# grpc-message is percent-encoded: printable ASCII but "%" stays (gRPC's PROTOCOL-HTTP2.md).
_GRPC_MESSAGE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)


# Exchange.grpc_status of a request whose client takes trailers (TE: trailers, which every gRPC client sends) until
# its answer says whether it is gRPC and which status it got (an HTTP/1.1 pod's: proxy/http/h1_response.py); a line
# logged with it says null. Only such requests pay for the look (request_fields.add_field sets it).
GRPC_PENDING = -2


def grpc_request(head: Exchange) -> bool:
    """Whether a request is gRPC (its Content-Type is application/grpc or application/grpc+...): the proxy's own
    answers to it are gRPC errors."""
    content_type = head.header(b"content-type")
    return content_type is not None and content_type.lower().startswith(_GRPC_CONTENT_TYPE)


def grpc_answered(ex: Exchange, status: int) -> None:
    """The proxy answers a gRPC request itself for HTTP `status`: the client gets HTTP 200 with the gRPC status,
    so the access log and the metrics count 200 (what was sent) and the log's ``grpc_status`` says which."""
    ex.grpc_status = GRPC_STATUSES.get(status, 2)
    ex.status = 200


def grpc_message(message: str) -> bytes:
    """A grpc-message value: percent-encoded as gRPC's PROTOCOL-HTTP2.md says."""
    return quote(message, safe=_GRPC_MESSAGE_SAFE).encode("ascii")


def grpc_trailers(status: int, message: str) -> list[bytes]:
    """The trailer fields ending a gRPC answer the proxy cannot complete (the pod reset it, a timeout): the gRPC
    status of the HTTP status the proxy would have answered (GRPC_STATUSES), and the message."""
    fields = [b"grpc-status: %d\r\n" % GRPC_STATUSES.get(status, 2)]
    if message:
        fields.append(b"grpc-message: " + grpc_message(message) + b"\r\n")
    return fields


def grpc_end_with_error(ex: Exchange, error: UpstreamError) -> bool:
    """A gRPC answer already under way that cannot be completed ends with `error` as its trailers (a valid answer,
    not a cut connection), when the client takes trailers (TE: trailers) and the body is chunked; returns False
    (nothing done) for any other response."""
    writer = ex.writer
    if not (writer.chunked and getattr(ex, "te_trailers", False) and grpc_request(ex)):
        return False
    logger.warning("request %s: gRPC response ended with an error after it started (%s: %s)",
                   ex.request_id.decode("latin-1") or "-", type(error).__name__, error)
    ex.grpc_status = GRPC_STATUSES.get(error.status, 2)
    writer.end_with_trailers(grpc_trailers(error.status, str(error)))
    ex.sent += writer.flush()
    ex.resp_done = True
    ex.reusable = False
    ex.response_finished()
    return True


def grpc_error_response(status: int, request_id: bytes, *, close: bool, message: str, fields: bytes = b"") -> bytes:
    """The proxy's answer `status` to a gRPC request, as gRPC clients expect it: HTTP 200, no body, the gRPC status
    (GRPC_STATUSES) and message in the head (a trailers-only response)."""
    code = GRPC_STATUSES.get(status, 2)
    return b"".join((
        b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\ngrpc-status: %d\r\n" % code,
        b"grpc-message: " + grpc_message(message) + b"\r\n" if message else b"",
        fields,
        b"Content-Length: 0\r\nX-Request-ID: ",
        request_id,
        b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n",
    ))


# Request ids need to be unique, not secret: a generator seeded once from the OS per process
# (no getrandom syscall per request), 128 bits, like ingress-nginx's $req_id.
_ids = Random(SystemRandom().getrandbits(128))
# Public so the hot path can format an id inline (b"%032x" % random_bits(128)) without a call.
random_bits = _ids.getrandbits


def new_request_id() -> bytes:
    """32 hex digits, like ingress-nginx's $req_id."""
    return b"%032x" % random_bits(128)


def log_answer(
    level: int, status: int, ex: Exchange | None, request_id: bytes, client_ip: bytes, cause: BaseException | None
) -> None:
    """One log line for an answer of the proxy's own, with the request id its body and X-Request-ID carry."""
    head = ex
    method = head.method.decode("latin-1") if head is not None and head.method else "-"
    target = head.target[:200].decode("latin-1") if head is not None and head.target else "-"
    host = head.authority.decode("latin-1") if head is not None and head.authority else "-"
    reason = ""
    if cause is not None:
        reason = f": {type(cause).__name__}: {cause}"
        inner = cause.__cause__
        if inner is not None:
            reason += f" ({type(inner).__name__}: {inner})"
    logger.log(
        level,
        "%d for %s %s host=%s client=%s request_id=%s%s",
        status,
        method,
        target,
        host,
        client_ip.decode("latin-1"),
        request_id.decode("latin-1"),
        reason,
    )


