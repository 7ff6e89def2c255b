"""One GRPCRoute object → the same rules as an HTTPRoute's (routes.Rule), so one compiler, one merge and one
table serve both.

A gRPC call is a POST to `/<service>/<method>`, so a method match is a path match and the table needs
nothing new: Exact service and method → the Exact path `/<service>/<method>`; Exact service alone → the
Prefix `/<service>` (the table walks whole segments: `/foo.Bar/X` never reaches `/foo`); Exact method alone
and RegularExpression → a whole-path regex with `[^/]+` for the part not given; no method match → the
Prefix `/`. Every match also requires POST and its header matches. The rule's backends are spoken HTTP/2
cleartext (their cluster keys carry "~h2c", see routing.clusters.protocol_key).

Precedence is the spec's (GRPCRouteRule.matches): more characters in the matching service, then in the
matching method, then more header matches, then the older route, namespace/name, rule order. Each match
carries its (service characters, method characters) (`Match.grpc`; a RegularExpression value counts the
characters of its pattern) and the merge orders by them at build time (merge._place_candidates): on a host
with gRPC regexes, a service-only Prefix becomes the regex `/<service>/[^/]+` so that it is ranked among
them (a host without gRPC regexes keeps the cheaper Prefix). The table's own walk does the rest: an Exact
service and method is tried first (nothing can match more of that path), the catch-all Prefix `/` last.
Difference: a RegularExpression whose pattern is longer than an Exact service and method it also matches
still comes second. Regular expressions are Python's `re` dialect, matched against the whole service or
method.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from proxy.routing.fields import require_object, sequence, text
from proxy.routing.gateway.actions import read_backend_ref, read_filters, unsupported
from proxy.routing.gateway.routes import (
    Match,
    RouteSpec,
    Rule,
    read_native,
    read_route_object,
    value_match,
)
from proxy.routing.matches import Conditions, HeaderMatch
from proxy.routing.model import KIND_GRPC_ROUTE, PATH_EXACT, PATH_PREFIX, PATH_REGEX

# The filters a GRPCRoute rule (and its backendRefs) may carry; the others are HTTPRoute's alone.
_FILTERS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"})
# The CRD's CEL rules for Exact values.
_SERVICE = re.compile(r"\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*", re.IGNORECASE)
_METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_POST = b"POST"
_ANY_PART = "[^/]+"


def read_grpc_route(key: tuple[str, str], obj: Any) -> RouteSpec:
    """Judge one GRPCRoute; never raises (a broken object is a RouteSpec with `problem`)."""
    return read_route_object(key, obj, KIND_GRPC_ROUTE, _read_rule)


def _read_rule(spec: RouteSpec, rule: Rule, item: dict[str, Any], where: str) -> None:
    namespace = spec.key[0]
    rule.name = text(item, "name", f"{where}.")
    matches = sequence(item, "matches", f"{where}.") or [{}]
    rule.matches = tuple(grpc_match(require_object(m, f"{where}.matches[{i}]"), f"{where}.matches[{i}]")
                         for i, m in enumerate(matches))
    rule.filters = read_filters(_grpc_filters(sequence(item, "filters", f"{where}."), f"{where}.filters"),
                                f"{where}.filters", namespace)
    backends = []
    for index, ref in enumerate(sequence(item, "backendRefs", f"{where}.")):
        at = f"{where}.backendRefs[{index}]"
        ref = require_object(ref, at)
        read = read_backend_ref(ref, at, namespace)
        items = _grpc_filters(sequence(ref, "filters", f"{at}."), f"{at}.filters")
        filters = read_filters(items, f"{at}.filters", namespace)
        backends.append(replace(read, filters=filters) if filters else read)
    rule.backends = tuple(backends)
    rule.native = read_native(spec, item, where)


def _grpc_filters(items: list[Any], where: str) -> list[Any]:
    for index, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(kind, str) and kind not in _FILTERS:
            raise unsupported(f"{where}[{index}].type {kind!r:.40} is not a GRPCRoute filter "
                              "(RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef)")
    return items


def grpc_match(item: dict[str, Any], where: str) -> Match:
    """One GRPCRouteMatch as a path match (see the module docstring) with POST and its header conditions."""
    conditions = Conditions(method=_POST, headers=_headers(item, where))
    body = item.get("method")
    if body is None:
        return Match("/", PATH_PREFIX, "", None, conditions, (0, 0))
    body = require_object(body, f"{where}.method")
    at = f"{where}.method."
    kind = text(body, "type", at) or "Exact"
    service = text(body, "service", at)
    method = text(body, "method", at)
    if not service and not method:
        raise unsupported(f"{where}.method: one or both of service and method must be given")
    if kind == "Exact":
        if service and not _SERVICE.fullmatch(service):
            raise unsupported(f"{at}service {service!r:.80} is not a valid gRPC service name")
        if method and not _METHOD.fullmatch(method):
            raise unsupported(f"{at}method {method!r:.80} is not a valid gRPC method name")
        if service and method:
            path = f"/{service}/{method}"
            return Match(path, PATH_EXACT, path, None, conditions, (len(service), len(method)))
        if service:
            return Match(f"/{service}/", PATH_PREFIX, f"/{service}", None, conditions, (len(service), 0))
        source = f"/{_ANY_PART}/{re.escape(method)}"
    elif kind == "RegularExpression":
        parts = []
        for name, value in (("service", service), ("method", method)):
            if value:
                try:
                    re.compile(value)
                except re.error as error:
                    raise unsupported(f"{at}{name} {value!r:.80} is not a valid regular expression: "
                                      f"{error}") from None
            parts.append(f"(?:{value})" if value else _ANY_PART)
        source = f"/{parts[0]}/{parts[1]}"
    else:
        raise unsupported(f"{at}type {kind!r:.40} is not Exact or RegularExpression")
    return Match(source, PATH_REGEX, source, re.compile(source), conditions, (len(service), len(method)))


def _headers(item: dict[str, Any], where: str) -> tuple[HeaderMatch, ...]:
    """Header conditions; only the first of equivalent names counts (the spec's rule)."""
    found: dict[bytes, HeaderMatch] = {}
    for index, header in enumerate(sequence(item, "headers", f"{where}.")):
        at = f"{where}.headers[{index}]."
        name, value, pattern = value_match(require_object(header, at[:-1]), at)
        key = name.lower().encode()
        if key not in found:
            compiled = re.compile(value.encode("latin-1")) if pattern else None
            found[key] = HeaderMatch(key, value.encode("latin-1"), compiled)
    return tuple(found.values())
