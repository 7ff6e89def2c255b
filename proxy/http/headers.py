"""Which header fields the proxy keeps, rewrites or drops, decided once per distinct name.

Header names arrive as raw bytes in whatever case the peer used. Classifying a name
costs a lower() and a dict lookup; the answer is cached per raw spelling (bounded) so
the usual names cost one dict hit per request.
"""

from __future__ import annotations

# Request header classes (0 = forward as is).
KEEP = 0
HOST = 1
CONTENT_LENGTH = 2
TRANSFER_ENCODING = 3
CONNECTION = 4
HOP_BY_HOP = 5  # Keep-Alive, Proxy-Connection, TE, Trailer: dropped
UPGRADE = 6
FORWARDED_FOR = 7
OURS = 8  # X-Forwarded-Proto/Host/Port, X-Real-IP: replaced by the proxy's own values
REQUEST_ID = 9
USER_AGENT = 10  # forwarded as is, and remembered for the access log
# Response only: the upstream's own Strict-Transport-Security replaces the listener's.
STRICT_TRANSPORT_SECURITY = 11
# W3C trace context: forwarded as is, and remembered (proxy.tracing replaces them on traced routes).
TRACEPARENT = 12
TRACESTATE = 13
SERVER = 14  # a response's Server: dropped when the ConfigMap sets server-tokens (see Listener.hide_server)
TE = 15  # a request's TE: dropped (hop-by-hop), remembered when it says "trailers" (HTTP/2 pods send trailers)

_REQUEST_CLASSES = {
    b"host": HOST,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"connection": CONNECTION,
    b"keep-alive": HOP_BY_HOP,
    b"proxy-connection": HOP_BY_HOP,
    b"te": TE,
    b"trailer": HOP_BY_HOP,
    b"upgrade": UPGRADE,
    b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": OURS,
    b"x-forwarded-host": OURS,
    b"x-forwarded-port": OURS,
    b"x-real-ip": OURS,
    b"x-request-id": REQUEST_ID,
    b"user-agent": USER_AGENT,
    b"traceparent": TRACEPARENT,
    b"tracestate": TRACESTATE,
}

_RESPONSE_CLASSES = {
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"connection": CONNECTION,
    b"keep-alive": HOP_BY_HOP,
    b"proxy-connection": HOP_BY_HOP,
    b"te": HOP_BY_HOP,
    b"trailer": HOP_BY_HOP,
    b"upgrade": UPGRADE,
    # The proxy answers with the request id it forwarded; an upstream copy would duplicate it.
    b"x-request-id": REQUEST_ID,
    b"strict-transport-security": STRICT_TRANSPORT_SECURITY,
    b"server": SERVER,
}

# Distinct raw spellings remembered; past this, names are classified without caching
# so a client sending random header names cannot grow memory.
_CACHE_LIMIT = 4096
# Public so the hot callbacks can try ``cache.get(name)`` inline before calling the classifier.
request_cache: dict[bytes, int] = {}
response_cache: dict[bytes, int] = {}

# Connection tokens that are options, not names of headers to drop.
CONNECTION_OPTIONS = frozenset((b"close", b"keep-alive", b"upgrade"))


def request_class(name: bytes) -> int:
    code = request_cache.get(name)
    if code is None:
        code = _REQUEST_CLASSES.get(name.lower(), KEEP)
        if len(request_cache) < _CACHE_LIMIT:
            request_cache[name] = code
    return code


def response_class(name: bytes) -> int:
    code = response_cache.get(name)
    if code is None:
        code = _RESPONSE_CLASSES.get(name.lower(), KEEP)
        if len(response_cache) < _CACHE_LIMIT:
            response_cache[name] = code
    return code


# Connection values that name no header to drop (the usual ones), answered without parsing.
PLAIN_CONNECTION_VALUES = frozenset(
    (b"keep-alive", b"Keep-Alive", b"close", b"Close", b"upgrade", b"Upgrade", b"keep-alive, Upgrade",
     b"Keep-Alive, Upgrade")
)


def connection_tokens(value: bytes) -> list[bytes]:
    """The lower-case tokens of a Connection header value."""
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


def named_by_connection(value: bytes) -> set[bytes]:
    """Header names a Connection value lists (options such as keep-alive excluded)."""
    if value in PLAIN_CONNECTION_VALUES:
        return set()
    return {token for token in connection_tokens(value) if token not in CONNECTION_OPTIONS}


def has_token(value: bytes, token: bytes) -> bool:
    return token in connection_tokens(value)


def drop_named(fields: list[bytes], names: set[bytes]) -> list[bytes]:
    """Remove the fields a Connection header named (``fields`` is flat: name, ": ", value, CRLF)."""
    kept: list[bytes] = []
    for index in range(0, len(fields), 4):
        if fields[index].lower() not in names:
            kept.extend(fields[index : index + 4])
    return kept


def drop_field(fields: list[bytes], name: bytes) -> list[bytes]:
    return drop_named(fields, {name})
