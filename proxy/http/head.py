"""The protocol-neutral request head: what a protocol class (HTTP/1.1 today, HTTP/2 later) produces.

The HTTP/1.1 protocol fills it from its parser callbacks; the pipeline routes it, runs the rule's
filters on it (it implements `proxy.routing.request.Request`) and turns it into the upstream
request. Header fields are kept flat, as the upstream writer sends them:
``[name, b": ", value, b"\\r\\n", name, ...]`` — pairs at indexes 4k and 4k + 2, in arrival order,
repeated fields kept. Names keep the client's spelling; lookups compare lower-cased.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from proxy.http.fields import FlatFields
from proxy.routing.request import ClientCertificate

_SEP = b": "
_CRLF = b"\r\n"


class RequestHead(FlatFields):
    """Method, scheme, authority, path, query and header fields of one request."""

    __slots__ = (
        "method",
        "target",
        "authority",
        "fields",
        "header_count",
        "header_bytes",
        "forwarded_for",
        "forwarded_in",
        "request_id",
        "upgrade",
        "connection_names",
        "content_length",
        "chunked",
        "http10",
        "websocket",
        "user_agent",
        "traceparent",
        "tracestate",
        "trace",
        "id_pool",
        "id_at",
        # The client sent `TE: trailers` (it takes trailer fields; an Exchange sets it only then: read it with
        # getattr(head, "te_trailers", False)).
        "te_trailers",
        # Set when the head is routed (see proxy.http.pipeline):
        "scheme",
        "host",
        "path",
        "query",
        "port",
        "https_port",
        "rewritten",
        "server_name",
        "_query_values",
    )

    def __init__(self) -> None:
        self.method = b""
        # The request target as received (origin form, or absolute form until routed).
        self.target = b""
        # The Host header as received (None when absent).
        self.authority: bytes | None = None
        # Forwarded fields, flat (see the module docstring).
        self.fields: list[bytes] = []
        self.header_count = 0
        self.header_bytes = 0
        self.forwarded_for: bytes | None = None
        # The client's X-Forwarded-Proto/-Host/-Port and X-Real-IP, flat (name, value, ...): never forwarded as
        # they are, read only when the client is trusted with them (proxy/http/forwarded.py).
        self.forwarded_in: list[bytes] | None = None
        # The client's X-Request-ID or a generated one; set once the head is read (b"" before).
        self.request_id = b""
        self.upgrade: bytes | None = None
        self.connection_names: set[bytes] | None = None
        self.content_length = -1
        self.chunked = False
        self.http10 = False
        self.websocket = False
        self.user_agent: bytes | None = None
        # W3C trace context as received (None: absent; see proxy.tracing.tracer), and the traceparent value
        # sent upstream when the request is traced (None: not traced).
        self.traceparent: bytes | None = None
        self.tracestate: bytes | None = None
        self.trace: bytes | None = None
        # Where this request's generated ids are (proxy.http.ids): the pool and the position in it.
        self.id_pool = b""
        self.id_at = 0
        self.te_trailers = False
        self.scheme = "http"
        self.host = ""  # normalized: lower-case, no port
        self.path = ""  # normalized
        self.query = b""  # without "?"
        self.port = 0  # the listener's port as clients see it
        self.https_port = 443
        # A filter changed the path or the Host: the upstream request line is made from `path`.
        self.rewritten = False
        self.server_name: str | None = None  # the TLS SNI of the connection
        self._query_values: dict[str, str] | None = None

    @property
    def client_address(self) -> bytes:
        """Unknown to a head alone (b""); an Exchange knows its connection's."""
        return b""

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """Unknown to a head alone (None); an Exchange asks its connection."""
        return None

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    # ------------------------------------------------------------------ reading (conditions)

    def header(self, name: bytes) -> bytes | None:
        """The value of `name` (lower-case); repeated fields joined with ", "; None when absent."""
        fields = self.fields
        found: bytes | None = None
        for index in range(0, len(fields), 4):
            if fields[index].lower() == name:
                value = fields[index + 2]
                found = value if found is None else found + b", " + value
        if found is None and name == b"host" and self.authority is not None:
            return self.authority
        return found

    def query_value(self, name: str) -> str | None:
        """The first value of a query parameter, percent-decoded; None when absent."""
        values = self._query_values
        if values is None:
            values = {}
            for key, value in parse_qsl(self.query.decode("latin-1"), keep_blank_values=True):
                values.setdefault(key, value)
            self._query_values = values
        return values.get(name)

    # ------------------------------------------------------------------ editing (filters)

    # set_header, add_header, remove_header: FlatFields'.

    def set_path(self, path: str) -> None:
        self.path = path
        self.rewritten = True

    def set_host(self, host: bytes) -> None:
        self.remove_header(b"host")
        self.fields += (b"Host", _SEP, host, _CRLF)
        self.rewritten = True
