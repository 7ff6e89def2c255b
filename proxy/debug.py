"""What the admin port's /debug pages say: the running tables as data, and one lookup spelled out.

`explain_match` runs the proxy's own lookup (the same table, the same `match`) for a request given as
host, path, and optionally listener port, method, headers and query, and lists every candidate of
the chosen host with whether and why it matches, so "why did this request go there" has an answer
for Ingress paths and Gateway API rules alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

from proxy.http.head import RequestHead
from proxy.routing.model import KIND_INGRESS, PATH_DEFAULT_BACKEND, Config, Endpoint, Route
from proxy.routing.paths import normalize_path
from proxy.routing.policies import RoutePolicy
from proxy.routing.table import Choice, RouteTable, VirtualHost, normalize_host
from proxy.runtime import Runtime
from proxy.upstream.cluster import Upstream


def describe_table(runtime: Runtime) -> dict[str, Any]:
    """The running configuration as plain data, with every cluster's endpoints as the live upstream sees them now."""
    config = runtime.config
    described = {"generation": runtime.generation, "checksum": config.checksum, **_describe(runtime, config.table)}
    if config.listeners:
        described["listeners"] = {
            str(port): {"port": listener.port, "protocol": listener.protocol, "ingress": listener.ingress,
                        "certificates": {pattern or "*": f"{ns}/{name}"
                                         for pattern, (ns, name) in sorted(listener.certificates.items())},
                        **_describe(runtime, listener.table)}
            for port, listener in sorted(config.listeners.items())}
    if config.tls_routes:
        described["tlsRoutes"] = {str(port): {pattern: _describe_route(runtime, route)
                                              for pattern, route in sorted(table.entries())}
                                  for port, table in sorted(config.tls_routes.items())}
    if config.gateway_status is not None:
        described["gateways"] = describe_gateways(config)
    return described


def describe_gateways(config: Config) -> dict[str, Any]:
    """The Gateway API and policy status the build computed (what the status writers publish in cluster mode):
    GatewayClasses, Gateways, our HTTPRoute `status.parents` entries, and our `status.ancestors` entries of
    every BackendTLSPolicy and BackendTrafficPolicy ("namespace/name" -> entries)."""
    status = config.gateway_status
    described: dict[str, Any] = {"gatewayClasses": {}, "gateways": {}, "httpRoutes": {}}
    if status is not None:
        described = {
            "gatewayClasses": {name: item.to_json() for name, item in sorted(status.classes.items())},
            "gateways": {f"{ns}/{name}": item.to_json() for (ns, name), item in sorted(status.gateways.items())},
            "httpRoutes": {f"{ns}/{name}": item.to_json() for (ns, name), item in sorted(status.routes.items())},
        }
        if status.tls_routes:
            described["tlsRoutes"] = {f"{ns}/{name}": item.to_json()
                                      for (ns, name), item in sorted(status.tls_routes.items())}
        if status.grpc_routes:
            described["grpcRoutes"] = {f"{ns}/{name}": item.to_json()
                                       for (ns, name), item in sorted(status.grpc_routes.items())}
    for field, policies in (("backendTLSPolicies", config.tls_policy_status),
                            ("backendTrafficPolicies", config.policy_status)):
        found = policies.policies if policies is not None else {}
        described[field] = {f"{ns}/{name}": item.to_json() for (ns, name), item in sorted(found.items())}
    return described


def _describe(runtime: Runtime, table: RouteTable) -> dict[str, Any]:
    return {
        "hosts": {host: _describe_host(runtime, routes) for host, routes in sorted(table.hosts.items())},
        "wildcards": {"*." + suffix: _describe_host(runtime, routes)
                      for suffix, routes in sorted({**table.suffixes, **table.wildcards}.items())},
        "anyHost": _describe_host(runtime, table.any_host) if table.any_host is not None else [],
    }


def _describe_host(runtime: Runtime, routes: VirtualHost) -> list[dict[str, Any]]:
    entries = [_describe_route(runtime, r) for slot in routes.exact.values() for r in _slot_routes(slot)]
    entries += [_describe_route(runtime, r) for _, slot in routes.regex for r in _slot_routes(slot)]
    entries += sorted((_describe_route(runtime, r) for slot in routes.prefix.values() for r in _slot_routes(slot)),
                      key=lambda e: -len(e["path"]))  # in match order: longest prefix first
    if routes.default is not None:
        entries.append(_describe_route(runtime, routes.default))
    return entries


def _slot_routes(slot: Route | Choice) -> tuple[Route, ...]:
    """The rules sharing one path slot: a Choice holds those with method, header or query conditions."""
    return slot.routes if isinstance(slot, Choice) else (slot,)


def _describe_route(runtime: Runtime, route: Route) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": route.path,
        "pathType": route.path_type if route.path_type != PATH_DEFAULT_BACKEND else "defaultBackend",
        "ingress": route.name,
    }
    if route.kind != KIND_INGRESS:
        entry.update(kind=route.kind, rule=route.rule_name or route.rule)
    if route.conditions is not None:
        conditions = route.conditions
        entry["conditions"] = {
            **({"method": conditions.method.decode()} if conditions.method else {}),
            "headers": [f"{h.name.decode()} {'~' if h.pattern is not None else '='} "
                        f"{h.pattern.pattern.decode() if h.pattern is not None else h.value.decode()}"
                        for h in conditions.headers],
            "query": [f"{q.name} {'~' if q.pattern is not None else '='} "
                      f"{q.pattern.pattern if q.pattern is not None else q.value}" for q in conditions.query],
            **({"cookies": [f"{c.name.decode()} = {c.value.decode()}" for c in conditions.cookies]}
               if conditions.cookies else {}),
        }
    if route.filters is not None:
        filters = route.filters
        entry["filters"] = [type(f).__name__ for f in (*filters.request, *filters.response)]
        if filters.mirrors:
            entry["mirrors"] = [{"cluster": m.cluster, "percent": m.percent} for m in filters.mirrors]
    if route.timeouts is not None:
        timeouts = route.timeouts
        entry["timeouts"] = {"request": timeouts.request, "backendRequest": timeouts.backend_request}
        if timeouts.read is not None or timeouts.send is not None:
            entry["timeouts"].update(read=timeouts.read, send=timeouts.send)
    if route.policy is not None:
        entry["policy"] = _describe_policy(route.policy)
    if route.tracing is not None:
        entry["tracing"] = route.tracing  # its annotation; absent: the process's default
    if route.backends is not None:
        entry["backends"] = [{"weight": b.weight, **_describe_cluster(runtime, b.cluster)}
                             for b in route.backends.backends]
    else:
        entry.update(_describe_cluster(runtime, route.cluster))
    return entry


def _describe_cluster(runtime: Runtime, key: str) -> dict[str, Any]:
    if not key:
        return {"cluster": "", "backend": None, "endpoints": [], "invalid": True}
    cluster = runtime.config.clusters.get(key)
    upstream = runtime.upstreams.get(key)
    endpoints = upstream.endpoints if upstream is not None else (cluster.endpoints if cluster else ())
    entry: dict[str, Any] = {
        "cluster": key,
        "backend": f"{cluster.service}:{cluster.port}" if cluster is not None else None,
        "endpoints": [_address(e) for e in endpoints],
    }
    if cluster is not None and cluster.protocol:
        entry["protocol"] = cluster.protocol  # e.g. h2c: a GRPCRoute's backend
    if cluster is not None and cluster.external_name:
        entry["externalName"] = f"{cluster.external_name}:{cluster.external_port}"
    checked = cluster is not None and cluster.policy is not None and cluster.policy.health_check is not None
    if upstream is not None and (checked or any(not pool.healthy for pool in upstream.pools)):
        # Active health checks: the endpoints the balancer skips now.
        entry["unhealthy"] = [_address(pool.endpoint) for pool in upstream.pools if not pool.healthy]
    if upstream is not None and upstream.tls is not None:
        tls = upstream.tls
        entry["tls"] = {"sni": tls.server_name, "verify": tls.policy.verify,
                        "subjectAltNames": list(tls.policy.subject_alt_names),
                        "clientCertificate": bool(tls.policy.client_certificate)}
        if tls.error:
            entry["tls"]["error"] = tls.error
    policy = upstream.policy if upstream is not None else (cluster.policy if cluster is not None else None)
    if policy is not None:  # the build's, also without a live upstream (what a pure build describes)
        entry["clusterPolicy"] = _jsonable(asdict(policy))
    if upstream is not None:
        entry["endpointStates"] = _endpoint_states(upstream)
        if upstream.policy is not None:
            entry["clusterState"] = {"active": upstream.active, "pending": upstream.pending,
                                    "retrying": upstream.retrying, "ejected": upstream.ejected,
                                    "ejections": upstream.outliers.total if upstream.outliers is not None else 0}
    return entry


def _address(endpoint: Endpoint) -> str:
    return f"[{endpoint.address}]:{endpoint.port}" if ":" in endpoint.address else f"{endpoint.address}:{endpoint.port}"


def _endpoint_states(upstream: Upstream) -> list[dict[str, Any]]:
    """Each endpoint as its upstream sees it now: ready (it is in the cluster), ejected for how much longer,
    requests in flight, consecutive failures, latency EWMA (LeastRequest), idle and open connections."""
    try:
        now = asyncio.get_running_loop().time()
    except RuntimeError:
        now = time.monotonic()
    available = set(map(id, upstream.available))
    states = []
    for pool in upstream.pools:
        address, port = pool.endpoint
        states.append({
            "endpoint": f"[{address}]:{port}" if ":" in address else f"{address}:{port}",
            "ready": True,
            "balanced": id(pool) in available,
            "ejectedSeconds": round(max(0.0, pool.ejected_until - now), 3) if pool.ejected_until else 0,
            "ejections": pool.ejections,
            "inFlight": pool.in_flight,
            "failures": pool.failures,
            "ewmaMs": round(pool.ewma * 1000, 3),
            "idleConnections": len(pool.idle),
            "openConnections": pool.open,
        })
    return states


def _describe_policy(policy: RoutePolicy) -> dict[str, Any]:
    return _jsonable(asdict(policy))


def _jsonable(value: Any) -> Any:
    """A policy's fields as JSON: bytes as text, sets as sorted lists, secrets left out."""
    if isinstance(value, dict):
        return {key: ("<set>" if key in _SECRET_FIELDS and item else _jsonable(item)) for key, item in value.items()
                if item is not None}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(item) for item in value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


# BackendTLS material that must not be shown (the client key, certificates' PEM).
_SECRET_FIELDS = frozenset({"client_key", "client_certificate", "ca"})


# ---------------------------------------------------------------------------------------------- /debug/match

def explain_match(runtime: Runtime, host: str, path: str, *, port: int = 0, method: str = "GET",
                  headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Which route a request takes, and why: the same lookup as the proxy's, spelled out (the listener's
    table, the host rule, every candidate of that host and whether it matches)."""
    config = runtime.config
    raw_path, _, query = path.partition("?")
    host_name = normalize_host(host)
    normalized = normalize_path(raw_path)
    answer: dict[str, Any] = {"host": host_name, "path": normalized}
    listener = config.listeners.get(port) if port else None
    if port:
        answer["listener"] = (f"local port {port}: Gateway listeners on port {listener.port} ({listener.protocol})"
                              if listener is not None else f"local port {port}: the Ingress table")
    table = listener.table if listener is not None else config.table
    if normalized is None:
        answer["result"] = "400: the path climbs above / or has a broken escape"
        return answer
    request = _request(host_name, normalized, query, method, headers or [])
    routes = table.host_routes(host_name)
    if routes is None:
        answer["hostRule"] = None
        answer["result"] = "404: no rule for this host and no host-less rule or default backend"
        return answer
    answer["hostRule"] = _host_rule(table, host_name, routes)
    route = routes.match(normalized, request)
    answer["candidates"] = _candidates(runtime, routes, normalized, request)
    if route is None:
        answer["route"] = None
        answer["result"] = "404: no rule of this host matches"
        return answer
    chosen = _describe_route(runtime, route)
    if route is routes.default:
        chosen["why"] = "no path matched: default backend"
    elif route.kind == KIND_INGRESS and any(route in _slot_routes(slot) for _, slot in routes.regex):
        chosen["why"] = ("the first regex location that matches the start of the path, case-insensitive "
                         "(an ingress-nginx regex host: use-regex or rewrite-target on this host)")
    elif route.path_type == "Exact":
        chosen["why"] = "Exact match (Exact wins over any regex or Prefix)"
    elif route.path_type == "RegularExpression":
        chosen["why"] = "the regular expression matches the whole path (no Exact path did)"
    else:
        chosen["why"] = "the longest matching Prefix path"
    if route.conditions is not None:
        chosen["why"] += "; its conditions hold (rules of one path: method, then more headers, more query " \
                         "parameters, the oldest object, name, rule order)"
    answer["route"] = chosen
    answer["result"] = _outcome(runtime, route)
    return answer


def _request(host: str, path: str, query: str, method: str, headers: list[tuple[str, str]]) -> RequestHead:
    head = RequestHead()
    head.method = method.upper().encode("latin-1")
    head.host = host
    head.path = path
    head.query = query.encode("latin-1")
    for name, value in headers:
        head.add_header(name.encode("latin-1"), value.encode("latin-1"))
    return head


def _host_rule(table: RouteTable, host: str, routes: VirtualHost) -> dict[str, str]:
    if table.hosts.get(host) is routes:
        return {"kind": "exact", "host": host}
    if routes is table.any_host:
        return {"kind": "any host", "host": ""}
    for suffix, found in table.wildcards.items():
        if found is routes:
            return {"kind": "wildcard", "host": "*." + suffix}
    for suffix, found in table.suffixes.items():
        if found is routes:
            return {"kind": "wildcard (any depth)", "host": "*." + suffix}
    return {"kind": "unknown", "host": ""}


def _candidates(runtime: Runtime, routes: VirtualHost, path: str, request: RequestHead) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(slot: Route | Choice, matches: bool, why: str) -> None:
        for candidate in _slot_routes(slot):
            entry = {**_describe_route(runtime, candidate), "matches": matches, "why": why}
            if matches and candidate.conditions is not None:
                holds = candidate.conditions.matches(request)
                entry["matches"] = holds
                entry["why"] += "; conditions hold" if holds else "; conditions do not hold"
            found.append(entry)

    for key, slot in routes.exact.items():
        equal = key == path
        add(slot, equal, "equal path" if equal else "Exact needs the path to be equal")
    for pattern, slot in routes.regex:
        hit = pattern.fullmatch(path) is not None
        add(slot, hit, f"{pattern.pattern!r} {'matches' if hit else 'does not match'} the whole path")
    for key, slot in sorted(routes.prefix.items(), key=lambda item: -len(item[0])):
        below = not key or path == key or path.startswith(key + "/")
        add(slot, below, f"{path!r} is {key or '/'!r} or below it, element by element" if below
            else f"{path!r} is not below {key or '/'!r} (element-wise)")
    if routes.default is not None:
        found.append({**_describe_route(runtime, routes.default), "matches": True,
                      "why": "the default backend takes what no path matches"})
    return found


def _outcome(runtime: Runtime, route: Route) -> str:
    if route.ssl_redirect:
        return "308 to https over plain HTTP; over HTTPS: proxied"
    filters = route.filters
    if filters is not None and any(type(f).__name__ == "RequestRedirect" for f in filters.request):
        return "a redirect (RequestRedirect filter)"
    if route.backends is not None:
        usable = [b for b in route.backends.backends if b.cluster and b.weight > 0]
        if not usable:
            return "500: no backend can be served"
        return f"proxied to one of {len(usable)} weighted backends (invalid ones answer 500 for their share)"
    upstream = runtime.upstreams.get(route.cluster)
    if upstream is None or not upstream.pools:
        return "503: no ready endpoints"
    how = upstream.policy.load_balancer.kind if upstream.policy is not None else "RoundRobin"
    ejected = f", {upstream.ejected} ejected" if upstream.ejected else ""
    return f"proxied to one of {len(upstream.available)} endpoints ({how}{ejected})"
