"""ingress-nginx canaries: an Ingress with `canary: "true"` lends its backend to the main Ingress's
route at the same host, path and pathType, compiled into conditions and weighted backends.

The precedence is ingress-nginx's (its balancer.lua `route_to_alternative_balancer`), written as the
ordered rules of one path slot (a `Choice`), the first whose conditions hold deciding:

1. `canary-by-header`: with `canary-by-header-value`, that exact value goes to the canary; else with
   `canary-by-header-pattern`, a value the regex finds a match in goes to the canary (a pattern that
   does not compile sends every request carrying the header to the main backend, as nginx does when
   matching fails with an error); else "always" goes to the canary and "never" to the main backend.
   Any other value goes on to the next rule.
2. `canary-by-cookie`: "always" to the canary, "never" to the main backend; anything else goes on.
3. `canary-weight` out of `canary-weight-total` (ingress-nginx counts a total below 100 as 100): a
   weighted pair of backends; with weight 0, the main backend alone.

The canary route keeps everything else of the main route (filters, rewrite, redirects): a canary's
own annotations besides canary-* are ignored, as ingress-nginx ignores them. One canary per host and
path (the oldest wins); a canary whose path has no main Ingress is not served (and its hosts are not
claimed); a canary's defaultBackend lends itself to the catch-all defaultBackend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from proxy.routing.clusters import split_cluster_key
from proxy.routing.matches import Conditions, CookieMatch, HeaderMatch
from proxy.routing.model import Backend, Backends, Route
from proxy.routing.policies import affinity_prefix
from proxy.routing.table import Choice

if TYPE_CHECKING:
    from proxy.routing.ingress.annotations import IngressAnnotations

# Any value at all (the header is present).
_PRESENT = re.compile(rb".*", re.DOTALL)
_ALWAYS, _NEVER = b"always", b"never"


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """The canary-* annotations of one canary Ingress, checked."""

    header: bytes = b""  # lower-case; b"" none
    header_value: bytes = b""
    header_pattern: re.Pattern[bytes] | None = None
    # canary-by-header-pattern was given but does not compile: requests with the header go to the main backend.
    header_broken: bool = False
    cookie: bytes = b""  # lower-case
    weight: int = 0
    total: int = 100
    sticky: bool = True  # affinity-canary-behavior sticky (default) / legacy


def canary_spec(values: IngressAnnotations) -> tuple[CanarySpec | None, list[str]]:
    """The spec of a canary Ingress (None when `canary` is not "true") and problems, as messages."""
    used = [name for name, value in (("canary-by-header", values.canary_by_header),
                                     ("canary-by-header-value", values.canary_by_header_value),
                                     ("canary-by-header-pattern", values.canary_by_header_pattern),
                                     ("canary-by-cookie", values.canary_by_cookie),
                                     ("canary-weight", values.canary_weight > 0)) if value]
    if not values.canary:
        if used:
            return None, [f"annotations {', '.join(used)} need canary: \"true\"; ignored (as in ingress-nginx)"]
        return None, []
    problems: list[str] = []
    total = values.canary_weight_total
    if total < 100:
        if "canary-weight-total" not in values.invalid and total != 100:
            problems.append(f"annotation canary-weight-total: {total} is below 100, which ingress-nginx counts as 100")
        total = 100
    weight = values.canary_weight
    if weight < 0:
        problems.append(f"annotation canary-weight: {weight} is negative; 0 used")
        weight = 0
    pattern = None
    if values.canary_by_header_pattern and not values.canary_by_header_value:
        pattern = re.compile(values.canary_by_header_pattern.encode("latin-1"))
    broken = "canary-by-header-pattern" in values.invalid and not values.canary_by_header_value
    return CanarySpec(header=values.canary_by_header.lower().encode("latin-1"),
                      header_value=values.canary_by_header_value.encode("latin-1"),
                      header_pattern=pattern, header_broken=broken,
                      cookie=values.canary_by_cookie.lower().encode("latin-1"),
                      weight=weight, total=total, sticky=values.affinity_canary_behavior == "sticky"), problems


def canary_rules(main: Route, canary: str, spec: CanarySpec, affinity: bytes = b"") -> Route | Choice:
    """The rules of `main`'s slot once the canary backend (cluster key `canary`) joins it; `affinity`: the main
    Ingress's affinity cookie name (b"" none)."""
    to_canary = replace(main, cluster=canary)
    rules: list[Route] = []

    def when(route: Route, *, header: HeaderMatch | None = None, cookie: CookieMatch | None = None) -> None:
        rules.append(replace(route, conditions=Conditions(headers=(header,) if header else (),
                                                          cookies=(cookie,) if cookie else ())))

    if affinity:
        # balancer.lua: a request affinitized to the main backend stays there; one affinitized to the canary
        # goes there (sticky); the cookie's value starts with its Service's prefix (policies.affinity_prefix).
        name = affinity.lower()
        when(main, cookie=CookieMatch(name, affinity_prefix(*split_cluster_key(main.cluster)), prefix=True))
        if spec.sticky:
            when(to_canary, cookie=CookieMatch(name, affinity_prefix(*split_cluster_key(canary)), prefix=True))

    name = spec.header
    if name:
        if spec.header_value:
            when(to_canary, header=HeaderMatch(name, spec.header_value))
        elif spec.header_pattern is not None:
            when(to_canary, header=HeaderMatch(name, pattern=spec.header_pattern, search=True))
        elif spec.header_broken:
            when(main, header=HeaderMatch(name, pattern=_PRESENT))
        else:
            when(to_canary, header=HeaderMatch(name, _ALWAYS))
            when(main, header=HeaderMatch(name, _NEVER))
    if spec.cookie:
        when(to_canary, cookie=CookieMatch(spec.cookie, _ALWAYS))
        when(main, cookie=CookieMatch(spec.cookie, _NEVER))
    last = main
    if spec.weight > 0:
        share = min(spec.weight, spec.total)
        last = replace(main, cluster="", backends=Backends((_backend(main.cluster, spec.total - share),
                                                            _backend(canary, share))))
    if not rules:
        return last
    return Choice((*rules, last))


def _backend(cluster: str, weight: int) -> Backend:
    namespace, service, _ = split_cluster_key(cluster)
    return Backend(cluster, weight, namespace=namespace, service=service)


__all__ = ["CanarySpec", "canary_rules", "canary_spec"]
