"""What an HTTPRoute rule does: its filters and backendRefs, read from the object.

Reading happens once per HTTPRoute object; compiling (in `routes`) happens per match, because a
ReplacePrefixMatch replaces that match's own prefix, and after backendRefs are resolved against
the Services and ReferenceGrants of the snapshot. Unknown filter types and impossible values
raise `RuleInvalid`, which drops the rule with the reason the spec asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.routing.fields import Malformed, mapping, port_number, require_object, sequence, text
from proxy.routing.filters import (
    REDIRECT_CODES,
    Cors,
    HeaderEdits,
    Mirror,
    PathModifier,
    RequestHeaderModifier,
    RequestRedirect,
    ResponseHeaderModifier,
    URLRewrite,
)
from proxy.routing.gateway.hostnames import check_hostname
from proxy.routing.paths import normalize_path

# RFC 7230 token: what a header name may be.
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_CORS_ORIGIN = re.compile(r"(https?)://(\*|(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*)(:[0-9]{1,5})?")


class RuleInvalid(ValueError):
    """A rule cannot be implemented; `reason` is the Accepted condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def unsupported(message: str) -> RuleInvalid:
    return RuleInvalid("UnsupportedValue", message)


@dataclass(frozen=True, slots=True)
class BackendRef:
    """A backendRef (or a mirror's) as written, defaults filled in."""

    group: str
    kind: str
    name: str
    namespace: str
    port: int | None
    weight: int = 1
    filters: tuple[FilterSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class PathChange:
    """HTTPPathModifier as written; compiled into a PathModifier per match."""

    full: str | None = None
    prefix: str | None = None

    def compile(self, matched: str | None) -> PathModifier:
        if self.full is not None:
            return PathModifier(full=self.full)
        assert matched is not None  # checked when the rule was read: ReplacePrefixMatch needs PathPrefix matches
        return PathModifier(prefix=self.prefix, matched=matched)


# A resolver gives a backendRef's cluster key ("" when it cannot be served).
Resolve = Callable[[BackendRef], str]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """One filter as read. `made` is the compiled filter when it depends on nothing else."""

    type: str
    made: Any = None
    path: PathChange | None = None
    redirect: tuple[int, str | None, str | None, int | None] | None = None  # status, scheme, hostname, port
    hostname: bytes | None = None  # URLRewrite
    mirror: BackendRef | None = None
    percent: float = 100.0
    # ExtensionRef: a reference that cannot be resolved. The rule's requests get 500 (the spec forbids
    # skipping the filter) and ResolvedRefs says why.
    unresolved: str = ""

    @property
    def prefix_match(self) -> bool:
        return self.path is not None and self.path.prefix is not None

    def compile(self, matched: str | None, resolve: Resolve) -> Any:
        """The filter object for one match (None: nothing to run, e.g. a mirror that cannot be resolved)."""
        if self.made is not None:
            return self.made
        if self.unresolved:
            return None
        path = self.path.compile(matched) if self.path is not None else None
        if self.type == "RequestRedirect":
            assert self.redirect is not None
            status, scheme, hostname, port = self.redirect
            return RequestRedirect(status=status, scheme=scheme, hostname=hostname, port=port, path=path)
        if self.type == "URLRewrite":
            return URLRewrite(hostname=self.hostname, path=path)
        assert self.mirror is not None
        cluster = resolve(self.mirror)
        return Mirror(cluster, self.percent) if cluster else None


def read_filters(items: list[Any], where: str, namespace: str) -> tuple[FilterSpec, ...]:
    """A rule's (or backendRef's) filters, in order; raises RuleInvalid for what cannot be served."""
    found: list[FilterSpec] = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        try:
            found.append(_read_filter(require_object(item, at), at, namespace))
        except Malformed as error:
            raise unsupported(str(error)) from None
    kinds = [spec.type for spec in found]
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        raise RuleInvalid("IncompatibleFilters", f"{where}: RequestRedirect and URLRewrite cannot be combined")
    for kind in ("RequestRedirect", "URLRewrite", "RequestHeaderModifier", "ResponseHeaderModifier", "CORS"):
        if kinds.count(kind) > 1:
            raise unsupported(f"{where}: {kind} may be given only once")
    return tuple(found)


def _read_filter(item: dict[str, Any], at: str, namespace: str) -> FilterSpec:
    kind = text(item, "type", f"{at}.", required=True)
    if kind == "RequestHeaderModifier":
        edits = mapping(item, "requestHeaderModifier", f"{at}.", required=True)
        return FilterSpec(kind, made=RequestHeaderModifier(_edits(edits, f"{at}.requestHeaderModifier")))
    if kind == "ResponseHeaderModifier":
        edits = mapping(item, "responseHeaderModifier", f"{at}.", required=True)
        return FilterSpec(kind, made=ResponseHeaderModifier(_edits(edits, f"{at}.responseHeaderModifier")))
    if kind == "RequestRedirect":
        return _redirect(mapping(item, "requestRedirect", f"{at}.", required=True), f"{at}.requestRedirect")
    if kind == "URLRewrite":
        body = mapping(item, "urlRewrite", f"{at}.", required=True)
        where = f"{at}.urlRewrite."
        hostname = body.get("hostname")
        return FilterSpec(kind, hostname=check_hostname(hostname, f"{where}hostname", wildcard=False).encode()
                          if hostname is not None else None,
                          path=_path_change(body.get("path"), f"{where}path"))
    if kind == "RequestMirror":
        body = mapping(item, "requestMirror", f"{at}.", required=True)
        where = f"{at}.requestMirror."
        target = read_backend_ref(mapping(body, "backendRef", where, required=True), f"{where}backendRef", namespace,
                                  weighted=False)
        return FilterSpec(kind, mirror=target, percent=_percent(body, where))
    if kind == "CORS":
        return FilterSpec(kind, made=_cors(mapping(item, "cors", f"{at}.", required=True), f"{at}.cors."))
    if kind == "ExtensionRef":
        ref = mapping(item, "extensionRef", f"{at}.", required=True)
        what = f"{ref.get('group') or 'core'}/{ref.get('kind')} {ref.get('name')}"
        return FilterSpec(kind, unresolved=f"{at}: ExtensionRef {what} cannot be resolved (no extension kinds "
                                            "are supported); its requests get 500")
    raise unsupported(f"{at}.type {kind!r:.40} is not supported")


def _edits(body: dict[str, Any], where: str) -> HeaderEdits:
    def pairs(field: str) -> tuple[tuple[bytes, bytes], ...]:
        found: dict[str, tuple[bytes, bytes]] = {}
        for index, item in enumerate(sequence(body, field, f"{where}.")):
            at = f"{where}.{field}[{index}]."
            item = require_object(item, at[:-1])
            name = text(item, "name", at, required=True)
            value = item.get("value")
            if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
                raise Malformed(f"{at}value must be a header value (printable characters), got {value!r:.40}")
            if not _TOKEN.fullmatch(name):
                raise Malformed(f"{at}name {name!r:.40} is not a header name")
            found.setdefault(name.lower(), (name.encode(), value.encode("latin-1", "replace")))
        return tuple(found.values())

    removed = []
    for index, name in enumerate(sequence(body, "remove", f"{where}.")):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise Malformed(f"{where}.remove[{index}] {name!r:.40} is not a header name")
        removed.append(name.lower().encode())
    return HeaderEdits(set=pairs("set"), add=pairs("add"), remove=tuple(dict.fromkeys(removed)))


def _path_change(body: Any, where: str) -> PathChange | None:
    if body is None:
        return None
    body = require_object(body, where)
    kind = text(body, "type", f"{where}.", required=True)
    if kind == "ReplaceFullPath":
        return PathChange(full=_replacement(body.get("replaceFullPath"), f"{where}.replaceFullPath", empty="/"))
    if kind == "ReplacePrefixMatch":
        return PathChange(prefix=_replacement(body.get("replacePrefixMatch"), f"{where}.replacePrefixMatch", empty=""))
    raise Malformed(f"{where}.type {kind!r:.40} is not ReplaceFullPath or ReplacePrefixMatch")


def _replacement(value: Any, where: str, *, empty: str) -> str:
    if value is None or value == "":
        return empty
    if not isinstance(value, str) or not value.startswith("/"):
        raise Malformed(f"{where} must be a path starting with '/', got {value!r:.60}")
    normalized = normalize_path(value)
    if normalized is None or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        raise Malformed(f"{where} {value!r:.60} is not a valid path")
    return normalized


def _redirect(body: dict[str, Any], where: str) -> FilterSpec:
    status = body.get("statusCode", 302)
    if type(status) is not int or status not in REDIRECT_CODES:
        raise Malformed(f"{where}.statusCode {status!r:.20} is not one of 301, 302, 303, 307, 308")
    scheme = body.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        raise Malformed(f"{where}.scheme {scheme!r:.20} is not http or https")
    hostname = body.get("hostname")
    if hostname is not None:
        hostname = check_hostname(hostname, f"{where}.hostname", wildcard=False)
    port = port_number(body, "port", f"{where}.")
    return FilterSpec("RequestRedirect", redirect=(status, scheme, hostname, port),
                      path=_path_change(body.get("path"), f"{where}.path"))


def _percent(body: dict[str, Any], where: str) -> float:
    percent = body.get("percent")
    fraction = body.get("fraction")
    if percent is not None and fraction is not None:
        raise Malformed(f"{where}percent and fraction cannot both be set")
    if percent is not None:
        if type(percent) is not int or not 0 <= percent <= 100:
            raise Malformed(f"{where}percent must be 0-100, got {percent!r:.20}")
        return float(percent)
    if fraction is not None:
        fraction = require_object(fraction, f"{where}fraction")
        numerator = fraction.get("numerator")
        denominator = fraction.get("denominator", 100)
        if (type(numerator) is not int or type(denominator) is not int or numerator < 0 or denominator < 1
                or numerator > denominator):
            raise Malformed(f"{where}fraction must have 0 <= numerator <= denominator, denominator >= 1")
        return 100.0 * numerator / denominator
    return 100.0


def _cors(body: dict[str, Any], where: str) -> Cors:
    def names(field: str) -> list[str]:
        values = sequence(body, field, where)
        if not all(isinstance(v, str) and v for v in values):
            raise Malformed(f"{where}{field} must hold non-empty strings")
        return list(dict.fromkeys(values))

    origins = names("allowOrigins")
    parsed = []
    for origin in origins:
        if origin == "*":
            continue
        found = _CORS_ORIGIN.fullmatch(origin)
        if found is None:
            raise Malformed(f"{where}allowOrigins {origin!r:.60} is not '*' or scheme://host[:port]")
        scheme = found[1].lower()
        port = int(found[5][1:]) if found[5] else (443 if scheme == "https" else 80)
        parsed.append((scheme, found[2].lower(), port))
    methods = names("allowMethods")
    headers = names("allowHeaders")
    expose = names("exposeHeaders")
    credentials = body.get("allowCredentials", False)
    if not isinstance(credentials, bool):
        raise Malformed(f"{where}allowCredentials must be a boolean")
    max_age = body.get("maxAge", 0)
    if type(max_age) is not int or max_age < 0:
        raise Malformed(f"{where}maxAge must be a number of seconds")
    # A "*" expose list cannot be sent with credentials (browsers read it as a header name then).
    expose_text = "" if "*" in expose and credentials else ", ".join(expose)
    return Cors(origins=tuple(parsed), any_origin="*" in origins,
                methods="" if "*" in methods else ", ".join(methods), any_method="*" in methods,
                headers="" if "*" in headers else ", ".join(headers), any_header="*" in headers,
                expose=expose_text, credentials=credentials, max_age=max_age or 5)


def read_backend_ref(item: dict[str, Any], where: str, namespace: str, *, weighted: bool = True) -> BackendRef:
    """A backendRef with defaults: group "" and kind Service, the route's namespace, weight 1."""
    group = item.get("group")
    kind = item.get("kind")
    if (group is not None and not isinstance(group, str)) or (kind is not None and not isinstance(kind, str)):
        raise Malformed(f"{where}.group and .kind must be strings")
    name = text(item, "name", f"{where}.", required=True)
    port = port_number(item, "port", f"{where}.")
    weight = 1
    if weighted:
        weight = item.get("weight", 1)
        if type(weight) is not int or not 0 <= weight <= 1_000_000:
            raise Malformed(f"{where}.weight must be 0-1000000, got {weight!r:.20}")
    return BackendRef(group or "", kind or "Service", name, text(item, "namespace", f"{where}.") or namespace,
                      port, weight)
