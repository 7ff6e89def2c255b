"""Filters: per-rule request and response steps, compiled at build time, run in a fixed order.

Each filter is a small frozen object with one method: `on_request(request)` returns an `Answer`
when the proxy must answer itself (a redirect) and None to go on; `on_response(request, response)`
edits the response head. `compose` orders a rule's filters the one way they always run, so the
order never depends on how a manifest lists them:

    request:  fixed redirect → HTTPS redirect → CORS preflight → redirect → URL rewrite → request headers → mirrors
    response: CORS headers → response headers

A filter with both methods (CORS) takes part in both phases. Response filters run on every
response of the rule, including answers the proxy made itself (a redirect, a CORS preflight).
A rule without filters has `Route.filters` None and runs none of this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from proxy.routing.external_auth import Template
from proxy.routing.request import Request, Response

# Request paths reachable over plain HTTP even when the host redirects to HTTPS: ACME HTTP-01
# challenges (ACME clients do not follow to HTTPS first).
ACME_CHALLENGE = "/.well-known/acme-challenge/"

# Redirect status codes the Gateway API allows.
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Answer:
    """The proxy answers itself instead of forwarding (a redirect, a refusal)."""

    status: int
    location: bytes = b""
    detail: str = ""
    fields: bytes = b""  # more header fields of the answer, ready to send ("WWW-Authenticate: ...\r\n")
    # A check too slow for the event loop (a bcrypt password): the server runs `check()` on a worker
    # thread, then `settle(result)` on the loop; True goes on with the request as if the filter had passed
    # (its filters run again, and the filter remembers the result), False answers this Answer.
    check: Callable[[], bool] | None = None
    settle: Callable[[bool], None] | None = None


class RequestFilter(Protocol):
    @property
    def order(self) -> int:
        """Position in the fixed order (see the module docstring); lower runs first."""
        ...

    def on_request(self, request: Request) -> Answer | None: ...


class ResponseFilter(Protocol):
    @property
    def order(self) -> int: ...

    def on_response(self, request: Request, response: Response) -> None: ...


@dataclass(frozen=True, slots=True)
class Filters:
    """A rule's compiled filters, each phase in running order."""

    request: tuple[RequestFilter, ...] = ()
    response: tuple[ResponseFilter, ...] = ()
    # Backends to copy requests to (fire and forget), with the share of requests each gets.
    mirrors: tuple[Mirror, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.request or self.response or self.mirrors)

    def edits_request_header(self, name: bytes) -> bool:
        """A request-phase header modifier sets, adds or removes `name` (lower-case)."""
        for step in self.request:
            if isinstance(step, RequestHeaderModifier):
                edits = step.edits
                names = [*(n for n, _ in edits.set), *(n for n, _ in edits.add), *edits.remove]
                if any(n.lower() == name for n in names):
                    return True
        return False


def compose(filters: Iterable[RequestFilter | ResponseFilter | Mirror]) -> Filters | None:
    """Order `filters` by phase and position; None when there are none (the rule runs no filter code)."""
    request: list[RequestFilter] = []
    response: list[ResponseFilter] = []
    mirrors: list[Mirror] = []
    for item in filters:
        if isinstance(item, Mirror):
            mirrors.append(item)
            continue
        if hasattr(item, "on_request"):
            request.append(item)  # type: ignore[arg-type]  # hasattr does not narrow
        if hasattr(item, "on_response"):
            response.append(item)  # type: ignore[arg-type]
    if not (request or response or mirrors):
        return None
    request.sort(key=lambda f: f.order)
    response.sort(key=lambda f: f.order)
    return Filters(request=tuple(request), response=tuple(response), mirrors=tuple(mirrors))


# ---------------------------------------------------------------------------------------------- redirects

def _location(scheme: str, host: str, port: int, path: str, query: bytes) -> bytes:
    """An absolute Location; the port is left out when it is the scheme's default."""
    default = 443 if scheme == "https" else 80 if scheme == "http" else 0
    authority = host if port == default or not port else f"{host}:{port}"
    location = f"{scheme}://{authority}{path}".encode("latin-1")
    return location + b"?" + query if query else location


@dataclass(frozen=True, slots=True)
class HttpsRedirect:
    """Plain-HTTP requests for a host with TLS get 308 (the ConfigMap's http-redirect-code) to https (ingress-nginx's
    ssl-redirect). `keep_slash`: preserve-trailing-slash; without it one trailing "/" of the request URI (the
    query's, when there is one) is dropped, as lua_ingress.lua does: GET / goes to https://host. The Location has
    no port, as lua_ingress.lua writes it without use-port-in-redirects, unless --publish-https-port names one
    (the request's https_port; 443 is left out). `port` (use-port-in-redirects): always written, 443 too, as
    lua_ingress.lua writes its HTTPS listen port then."""

    keep_slash: bool = False
    status: int = 308
    port: int = 0
    order: int = field(default=0, init=False)

    def on_request(self, request: Request) -> Answer | None:
        if request.scheme != "http":
            return None
        host = request.host
        path = request.path
        if not host or path.startswith(ACME_CHALLENGE):
            return None
        query = request.query
        if not self.keep_slash:
            if query:
                if query.endswith(b"/"):
                    query = query[:-1]
            elif path.endswith("/"):
                path = path[:-1]
        if self.port:
            location = f"https://{host}:{self.port}{path}".encode("latin-1")
            return Answer(self.status, location + b"?" + query if query else location)
        return Answer(self.status, _location("https", host, request.https_port, path, query))


@dataclass(frozen=True, slots=True)
class PathModifier:
    """Gateway API HTTPPathModifier, compiled for one match: the whole path, or the matched prefix."""

    full: str | None = None  # ReplaceFullPath
    prefix: str | None = None  # ReplacePrefixMatch: what replaces `matched`
    matched: str = ""  # the rule's prefix, normalized without trailing "/" ("" for "/")

    def apply(self, path: str) -> str:
        if self.full is not None:
            return self.full
        assert self.prefix is not None
        rest = path[len(self.matched):] if path.startswith(self.matched) else path
        replaced = self.prefix.rstrip("/") + rest
        if not replaced.startswith("/"):
            replaced = "/" + replaced
        return replaced


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    """Gateway API RequestRedirect: scheme, hostname, port, path and status of the redirect."""

    status: int = 302
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    order: int = field(default=10, init=False)

    def on_request(self, request: Request) -> Answer | None:
        scheme = self.scheme or request.scheme
        if self.port is not None:
            port = self.port
        elif self.scheme is not None:
            port = 443 if scheme == "https" else 80 if scheme == "http" else request.port
        else:
            port = request.port
        path = self.path.apply(request.path) if self.path is not None else request.path
        return Answer(self.status, _location(scheme, self.hostname or request.host, port, path, request.query))


@dataclass(frozen=True, slots=True)
class FixedRedirect:
    """ingress-nginx's `permanent-redirect` / `temporal-redirect`: every request gets `status` and this
    exact Location (nginx's `return CODE URL`: nothing of the request is appended). It runs before the
    HTTPS redirect, as nginx's `return` runs before ingress-nginx's Lua redirect."""

    status: int
    location: bytes
    order: int = field(default=-5, init=False)

    def on_request(self, request: Request) -> Answer | None:
        return Answer(self.status, self.location)


@dataclass(frozen=True, slots=True)
class RootRedirect:
    """ingress-nginx's `app-root`: a request for exactly "/" gets 302 to scheme://Host header + `root`
    (nginx's `return 302 $scheme://$http_host<root>`: the Host as the client sent it, port included)."""

    root: bytes
    status: int = 302
    order: int = field(default=-5, init=False)

    def on_request(self, request: Request) -> Answer | None:
        if request.path != "/":
            return None
        host = request.header(b"host")
        authority = host if host else request.host.encode("latin-1")
        return Answer(self.status, request.scheme.encode("latin-1") + b"://" + authority + self.root)


@dataclass(frozen=True, slots=True)
class WwwRedirect:
    """ingress-nginx's `from-to-www-redirect`: a request for one of `hosts` (the other spelling of a rule host,
    with or without "www.") gets 308 (the ConfigMap's http-redirect-code) to scheme://<rule host>:<port><request URI>
    (ngx_srv_redirect.lua: the port always written, one trailing "/" of the URI dropped). It runs first, as that
    redirect is a server of its own.
    `hosts` maps the requested host to the rule host, as sorted pairs."""

    hosts: tuple[tuple[str, str], ...]
    status: int = 308
    order: int = field(default=-6, init=False)

    def on_request(self, request: Request) -> Answer | None:
        host = request.host
        for source, target in self.hosts:
            if source == host:
                return self._answer(request, target)
        return None

    def _answer(self, request: Request, target: str) -> Answer:
        uri = request.path.encode("latin-1")
        query = request.query
        if query:
            uri += b"?" + query
        if uri.endswith(b"/"):
            uri = uri[:-1]
        return Answer(self.status, b"%s://%s:%d%s" % (request.scheme.encode("latin-1"), target.encode("latin-1"),
                                                      request.port, uri))


# ---------------------------------------------------------------------------------------------- rewrites

@dataclass(frozen=True, slots=True)
class RegexRewrite:
    """ingress-nginx's `rewrite-target` (nginx's `rewrite "(?i)<path>" <target> break`): when the rule
    path, as a case-insensitive regex, is found in the request path, the whole path becomes the target
    with `$1`..`$9` replaced by the groups it captured (a group that took part in nothing gives "").
    The query string is kept. `parts` is the target split at build time: text, or a group number."""

    pattern: re.Pattern[str]
    parts: tuple[str | int, ...]
    order: int = field(default=20, init=False)

    def on_request(self, request: Request) -> Answer | None:
        found = self.pattern.search(request.path)
        if found is None:
            return None
        groups = found.re.groups
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
            elif part <= groups:
                pieces.append(found.group(part) or "")
        path = "".join(pieces)
        request.set_path(path if path.startswith("/") else "/" + path)
        return None


@dataclass(frozen=True, slots=True)
class URLRewrite:
    """Gateway API URLRewrite: the Host and/or the path forwarded upstream."""

    hostname: bytes | None = None
    path: PathModifier | None = None
    order: int = field(default=20, init=False)

    def on_request(self, request: Request) -> Answer | None:
        if self.hostname is not None:
            request.set_host(self.hostname)
        if self.path is not None:
            request.set_path(self.path.apply(request.path))
        return None


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """Set (replace), add (append) and remove header fields; names and values as ready bytes."""

    set: tuple[tuple[bytes, bytes], ...] = ()
    add: tuple[tuple[bytes, bytes], ...] = ()
    remove: tuple[bytes, ...] = ()

    def apply(self, target: Request | Response) -> None:
        for name in self.remove:
            target.remove_header(name)
        for name, value in self.set:
            target.set_header(name, value)
        for name, value in self.add:
            target.add_header(name, value)


@dataclass(frozen=True, slots=True)
class RequestHeaderModifier:
    edits: HeaderEdits
    order: int = field(default=30, init=False)

    def on_request(self, request: Request) -> Answer | None:
        self.edits.apply(request)
        return None


@dataclass(frozen=True, slots=True)
class ResponseHeaderModifier:
    edits: HeaderEdits
    order: int = field(default=30, init=False)

    def on_response(self, request: Request, response: Response) -> None:
        self.edits.apply(response)


# ---------------------------------------------------------------------------------------------- CORS

_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>[^/:?#]+)(?::(?P<port>[0-9]{1,5}))?")


def _origin_parts(origin: str, *, default_port: bool = True) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin or an allowOrigins entry, the port defaulted from the scheme
    (`default_port` False: 0 when none is written, as ingress-nginx compares origins as text)."""
    found = _ORIGIN.fullmatch(origin.lower())
    if found is None:
        return None
    scheme = found["scheme"]
    port = found["port"]
    if port:
        return scheme, found["host"], int(port)
    return scheme, found["host"], (443 if scheme == "https" else 80) if default_port else 0


# ingress-nginx's wildcard origin: "*" stands for one label of letters, digits and "-".
_LABEL = re.compile(r"[a-z0-9-]+")

# The fields ingress-nginx adds to its own answer to a preflight.
_PREFLIGHT_TYPE = b"text/plain charset=UTF-8"


@dataclass(frozen=True, slots=True)
class Cors:
    """CORS: answer preflights, add the Access-Control-* headers to allowed origins' responses.

    Gateway API (the default): a preflight (OPTIONS with Origin and Access-Control-Request-Method) is
    answered with 204 in the request phase; the response phase adds the headers to it as to any response.
    Where "*" is configured the request's own origin, method or headers are echoed: always correct, and
    required when credentials are allowed.

    `nginx`: ingress-nginx's `enable-cors` (its template's CORS block) instead. Origins are compared as
    written (no default port: "http://a.com" is not "http://a.com:80"), "*." stands for exactly one label;
    every response to an allowed origin gets every configured header (methods, headers, max-age too); any
    OPTIONS request from an allowed origin is answered 204 as a preflight; "*" answers
    "Access-Control-Allow-Origin: *" to every request, with an Origin or not. The literal "null" origin
    may be listed (as ("null", "", 0)).
    """

    # allowOrigins as (scheme, host pattern, port); a host pattern "*.x" (or "*") matches any labels on the left.
    origins: tuple[tuple[str, str, int], ...] = ()
    any_origin: bool = False
    methods: str = ""  # Access-Control-Allow-Methods as configured ("" when "*" or none)
    any_method: bool = False
    headers: str = ""
    any_header: bool = False
    expose: str = ""
    credentials: bool = False
    max_age: int = 5
    nginx: bool = False
    order: int = field(default=5, init=False)
    # nginx mode, compiled from the fields above: the fields set on every allowed answer (but Allow-Origin),
    # the lower-case names they replace, and the listed origins without wildcard as lower-case text.
    fixed: tuple[tuple[bytes, bytes], ...] = field(default=(), init=False, repr=False, compare=False)
    replaced: frozenset[bytes] = field(default=frozenset(), init=False, repr=False, compare=False)
    exact: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.nginx:
            return
        fixed = [(b"Access-Control-Allow-Credentials", b"true")] if self.credentials else []
        fixed += [(b"Access-Control-Allow-Methods", self.methods.encode("latin-1")),
                  (b"Access-Control-Allow-Headers", self.headers.encode("latin-1"))]
        if self.expose:
            fixed.append((b"Access-Control-Expose-Headers", self.expose.encode("latin-1")))
        fixed.append((b"Access-Control-Max-Age", str(self.max_age).encode()))
        object.__setattr__(self, "fixed", tuple(fixed))
        object.__setattr__(self, "replaced", frozenset(
            [b"access-control-allow-origin", *(name.lower() for name, _ in fixed)]))
        object.__setattr__(self, "exact", frozenset(
            f"{scheme}://{host}" + (f":{port}" if port else "") for scheme, host, port in self.origins
            if "*" not in host and scheme != "null"))

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        nginx = self.nginx
        if nginx:
            if origin.lower() in self.exact:
                return True
            if origin == "null":
                return ("null", "", 0) in self.origins
        parts = _origin_parts(origin, default_port=not nginx)
        if parts is None:
            return False
        scheme, host, port = parts
        for want_scheme, pattern, want_port in self.origins:
            if want_scheme != scheme or want_port != port:
                continue
            if pattern == host:
                return True
            if nginx:
                if pattern[:2] == "*." and host.endswith(pattern[1:]) \
                        and _LABEL.fullmatch(host[:len(host) - len(pattern) + 1]) is not None:
                    return True
            elif pattern == "*" or (pattern[:2] == "*." and host.endswith(pattern[1:])):
                return True
        return False

    def on_request(self, request: Request) -> Answer | None:
        if request.method != b"OPTIONS":
            return None
        origin = request.header(b"origin")
        if self.nginx:
            if self.any_origin or (origin is not None and self.allows(origin.decode("latin-1"))):
                return Answer(204, detail="CORS preflight")
            return None
        if origin is not None and request.header(b"access-control-request-method") is not None:
            return Answer(204, detail="CORS preflight")
        return None

    def on_response(self, request: Request, response: Response) -> None:
        if self.nginx:
            self._nginx_headers(request, response)
            return
        raw = request.header(b"origin")
        if raw is None:
            return
        origin = raw.decode("latin-1")
        if not self.allows(origin):
            return
        response.set_header(b"Access-Control-Allow-Origin", raw)
        response.add_header(b"Vary", b"Origin")
        if self.credentials:
            response.set_header(b"Access-Control-Allow-Credentials", b"true")
        if self.expose:
            response.set_header(b"Access-Control-Expose-Headers", self.expose.encode("latin-1"))
        wanted = request.header(b"access-control-request-method")
        if request.method != b"OPTIONS" or wanted is None:
            return
        if self.any_method:
            response.set_header(b"Access-Control-Allow-Methods", wanted)
        elif self.methods:
            response.set_header(b"Access-Control-Allow-Methods", self.methods.encode("latin-1"))
        asked = request.header(b"access-control-request-headers")
        if self.any_header:
            if asked is not None:
                response.set_header(b"Access-Control-Allow-Headers", asked)
        elif self.headers:
            response.set_header(b"Access-Control-Allow-Headers", self.headers.encode("latin-1"))
        response.set_header(b"Access-Control-Max-Age", str(self.max_age).encode())

    def _nginx_headers(self, request: Request, response: Response) -> None:
        """ingress-nginx's `more_set_headers` lines, on every response of an allowed origin."""
        if self.any_origin:
            origin = b"*"
        else:
            raw = request.header(b"origin")
            if raw is None or not self.allows(raw.decode("latin-1")):
                return
            origin = raw
            response.add_header(b"Vary", b"Origin")  # (not nginx's: caches must not mix origins' answers)
        response.replace_headers(self.replaced, ((b"Access-Control-Allow-Origin", origin), *self.fixed))
        if request.method == b"OPTIONS" and response.status == 204:
            response.set_header(b"Content-Type", _PREFLIGHT_TYPE)


# ---------------------------------------------------------------------------------------------- mirrors

@dataclass(frozen=True, slots=True)
class Mirror:
    """Copy requests to another backend and discard its answer (`percent` of them, 0-100).

    `cluster` "" marks a backend that cannot be resolved: nothing is mirrored.
    """

    cluster: str
    percent: float = 100.0
    # How the copy differs from the request sent to the pod (ingress-nginx's mirror-target); None: not at all.
    copy: MirrorCopy | None = None


@dataclass(frozen=True, slots=True)
class MirrorCopy:
    """An ingress-nginx mirror's copy: another request target and Host, maybe no body (mirror-request-body off).

    `path`: the target's path with nginx variables, rendered per request (nginx sends it as written); else
    `static` (the target's plain path, the request's query appended, as nginx's proxy_pass with a URI does);
    both empty: the request's own target."""

    host: bytes
    path: Template | None = None
    static: bytes = b""
    body: bool = True

    def head(self, request: Request, request_uri: str, parts: list[bytes]) -> list[bytes]:
        """The copy's head from the head sent to the pod (`parts`), ready to write; only mirrored requests pay."""
        data = b"".join(parts)
        end = data.index(b"\r\n")
        method, _, rest = data[:end].partition(b" ")
        target, _, version = rest.rpartition(b" ")
        if self.path is not None:
            target = self.path.render(request, request_uri).encode("latin-1")
        elif self.static:
            query = target.partition(b"?")[2]
            target = self.static + (b"?" + query if query else b"")
        dropped = (b"host", b"content-length", b"transfer-encoding") if not self.body else (b"host",)
        head = [method, b" ", target, b" ", version, b"\r\nHost: ", self.host, b"\r\n"]
        for line in data[end + 2:].split(b"\r\n"):
            if line and line.partition(b":")[0].strip().lower() not in dropped:
                head += (line, b"\r\n")
        head.append(b"\r\n")
        return head


# The filters of every Ingress route that redirects plain HTTP to HTTPS (shared: they hold no state), and of those
# whose Ingress says preserve-trailing-slash.
HTTPS_REDIRECT = Filters(request=(HttpsRedirect(),))
HTTPS_REDIRECT_KEEPING_SLASH = Filters(request=(HttpsRedirect(keep_slash=True),))
_HTTPS_REDIRECTS = {(False, 308, 0): HTTPS_REDIRECT, (True, 308, 0): HTTPS_REDIRECT_KEEPING_SLASH}


def https_redirect(*, keep_slash: bool, status: int, port: int = 0) -> Filters:
    """The shared filters of redirected routes for preserve-trailing-slash, the http-redirect-code and
    use-port-in-redirects (`port`: the one written, 0: none)."""
    found = _HTTPS_REDIRECTS.get((keep_slash, status, port))
    if found is None:
        found = _HTTPS_REDIRECTS[keep_slash, status, port] = Filters(request=(HttpsRedirect(keep_slash, status, port),))
    return found
