"""External authentication (ingress-nginx's `auth-url`, nginx's auth_request), compiled: what to ask, whom,
and what to do with the answer. The asking itself is proxy.http.auth_request's (the data plane); this module
is pure: templates of nginx variables compiled at build time, rendered from a `Request` per request.

nginx variables understood in `auth-url`, `auth-signin` and `auth-cache-key` (the ones ingress-nginx's
documentation and examples use): `$host`, `$http_host`, `$best_http_host`, `$request_uri`,
`$escaped_request_uri`, `$uri`, `$document_uri`, `$args`, `$query_string`, `$is_args`, `$scheme`,
`$pass_access_scheme`, `$request_method`, `$remote_addr`, `$remote_user`, `$server_port`, `$request_id`,
`$req_id`, and the families `$http_<header>`, `$cookie_<name>`, `$arg_<name>`; `${name}` too. Any other
variable is refused at build time with a warning (the Ingress's routes then answer 503: fail closed).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import quote

from proxy.routing.request import Request

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
KNOWN_VARIABLES = frozenset({
    "host", "http_host", "best_http_host", "request_uri", "escaped_request_uri", "uri", "document_uri", "args",
    "query_string", "is_args", "scheme", "pass_access_scheme", "request_method", "remote_addr", "remote_user",
    "server_port", "request_id", "req_id"})
_FAMILIES = ("http_", "cookie_", "arg_")

# Statuses nginx's `add_header` (without `always`) adds to: the auth service's Set-Cookie reaches the client
# only on these unless `auth-always-set-cookie`.
COOKIE_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})

# nginx's proxy_cache_valid time units, in seconds.
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w|M|y)")
# A proxy_cache_valid entry without status codes caches these (nginx).
_DEFAULT_CACHED = (200, 301, 302)


@dataclass(frozen=True, slots=True)
class Template:
    """Text with nginx variables: (is a variable, text or variable name) pieces, in order."""

    parts: tuple[tuple[bool, str], ...]

    @property
    def static(self) -> bool:
        return not any(variable for variable, _ in self.parts)

    def render(self, request: Request, request_uri: str) -> str:
        """The text with each variable's value for `request` (`request_uri`: the URI the client sent)."""
        return "".join(variable(text, request, request_uri) if is_variable else text
                       for is_variable, text in self.parts)


def compile_template(text: str) -> tuple[Template, list[str]]:
    """`text` as a Template, and the names of the variables not understood (empty: usable)."""
    parts: list[tuple[bool, str]] = []
    unknown: list[str] = []
    last = 0
    for found in _VARIABLE.finditer(text):
        if found.start() > last:
            parts.append((False, text[last:found.start()]))
        name = found[1] or found[2]
        if name not in KNOWN_VARIABLES and not (name.startswith(_FAMILIES) and name not in _FAMILIES):
            unknown.append(name)
        parts.append((True, name))
        last = found.end()
    if last < len(text):
        parts.append((False, text[last:]))
    return Template(tuple(parts)), unknown


def variable(name: str, request: Request, request_uri: str) -> str:
    """The value of one nginx variable (known by compile_template) for `request`."""
    if name == "host":
        return request.host
    if name in ("http_host", "best_http_host"):
        raw = request.header(b"host")
        return raw.decode("latin-1") if raw is not None else request.host
    if name == "request_uri":
        return request_uri
    if name == "escaped_request_uri":
        return quote(request_uri, safe="")
    if name in ("uri", "document_uri"):
        return request.path
    if name in ("args", "query_string"):
        return request.query.decode("latin-1")
    if name == "is_args":
        return "?" if request.query else ""
    if name in ("scheme", "pass_access_scheme"):
        return request.scheme
    if name == "request_method":
        return request.method.decode("latin-1")
    if name == "remote_addr":
        return request.client_address.decode("latin-1")
    if name == "remote_user":
        return remote_user(request.header(b"authorization"))
    if name == "server_port":
        return str(request.port)
    if name in ("request_id", "req_id"):
        raw = request.header(b"x-request-id")
        return raw.decode("latin-1") if raw is not None else ""
    if name.startswith("http_"):
        raw = request.header(name[5:].replace("_", "-").lower().encode("latin-1"))
        return raw.decode("latin-1") if raw is not None else ""
    if name.startswith("cookie_"):
        return cookie(request.header(b"cookie"), name[7:])
    if name.startswith("arg_"):
        return request.query_value(name[4:]) or ""
    return ""


def remote_user(authorization: bytes | None) -> str:
    """The user name of a Basic Authorization header ("" without one), as nginx's $remote_user."""
    if authorization is None or authorization[:6].lower() != b"basic ":
        return ""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return decoded.partition(b":")[0].decode("latin-1")


def cookie(header: bytes | None, name: str) -> str:
    """The value of cookie `name` in a Cookie header ("" when absent)."""
    if header is None:
        return ""
    for pair in header.decode("latin-1").split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            return value
    return ""


def cache_validity(entries: tuple[str, ...]) -> tuple[tuple[int, float], ...]:
    """nginx `proxy_cache_valid` entries ("200 202 10m") as (status, seconds) pairs; the first entry naming a
    status wins. Entries were validated by the annotation parser."""
    valid: dict[int, float] = {}
    for entry in entries:
        words = entry.split()
        codes = [int(word) for word in words if word.isdigit() and len(word) == 3] or list(_DEFAULT_CACHED)
        seconds = 0.0
        for word in words:
            found = _DURATION.fullmatch(word)
            if found is not None:
                seconds = int(found[1]) * _UNITS[found[2]]
        for code in codes:
            valid.setdefault(code, seconds)
    return tuple(sorted(valid.items()))


@dataclass(frozen=True, slots=True)
class ExternalAuth:
    """One Ingress's external authentication, ready for the data plane (proxy.http.auth_request).

    2xx from the auth service lets the request through (with `response_headers` copied from the answer into
    the request sent to the pod); 401 and 403 are returned to the client (a 401 with its WWW-Authenticate,
    or a 302 to `signin` when set); anything else, or no answer in time, is a 500."""

    url: Template
    host: Template  # the Host sent to the auth service: the URL's host without port (ingress-nginx's)
    zone: str  # "namespace/name" of the Ingress: its cache key space
    method: str = ""  # "" = GET (nginx's subrequest method)
    signin: Template | None = None
    redirect_param: str = "rd"
    response_headers: tuple[bytes, ...] = ()  # names as written
    request_redirect: bytes = b""  # X-Auth-Request-Redirect ("" = the request's URI)
    cache_key: Template | None = None
    cache_valid: tuple[tuple[int, float], ...] = ()
    always_set_cookie: bool = False
    # auth-proxy-set-headers: (name, value) sent to the auth service instead of the client's fields of that name.
    set_headers: tuple[tuple[bytes, Template], ...] = ()
    set_names: frozenset[bytes] = frozenset()  # their names, lowercase
    keepalive: int = 0  # idle connections kept toward the auth service (0: one connection per request)
    keepalive_timeout: int = 60
    keepalive_requests: int = 1000  # requests per kept connection
    connect_timeout: float = 5.0
    timeout: float = 60.0  # the whole auth request, connect included

    def cache_seconds(self, status: int) -> float:
        for code, seconds in self.cache_valid:
            if code == status:
                return seconds
        return 0.0

    def signin_location(self, request: Request, request_uri: str) -> bytes:
        """The 302's Location for a 401 (ingress-nginx's buildAuthSignURL): the sign-in URL plus
        `<param>=<scheme>://<Host header><escaped request URI>`, unless the URL already sets that parameter."""
        assert self.signin is not None
        url = self.signin.render(request, request_uri)
        _, _, query = url.partition("?")
        param = self.redirect_param
        if query:
            if any(pair.partition("=")[0] == param and pair.partition("=")[2] for pair in query.split("&")):
                return url.encode("latin-1")
            separator = "&"
        else:
            separator = "?"
        original = (f"{request.scheme}://{variable('http_host', request, request_uri)}"
                    f"{quote(request_uri, safe='')}")
        return f"{url}{separator}{param}={original}".encode("latin-1")


__all__ = ["COOKIE_STATUSES", "KNOWN_VARIABLES", "ExternalAuth", "Template", "cache_validity", "compile_template",
           "variable"]
