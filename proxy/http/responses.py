"""Responses the proxy writes itself: error pages and status lines."""

from __future__ import annotations

from http import HTTPStatus

REASONS: dict[int, bytes] = {status.value: status.phrase.encode() for status in HTTPStatus}
REASONS[499] = b"Client Closed Request"

_STATUS_PREFIX: dict[int, bytes] = {}


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
    """A short text/plain error naming the request id, so a user can quote it in a bug report."""
    reason = REASONS.get(status, b"Error")
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
            b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            b"Location: " + location + b"\r\n" if location else b"",
            fields,
            b"Cache-Control: no-store\r\nX-Request-ID: ",
            request_id,
            b"\r\n",
            connection,
            b"\r\n",
        )
    )
    return head if head_only else head + body
