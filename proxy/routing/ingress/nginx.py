"""ingress-nginx's routing annotations, compiled into the rule model's filters and matches.

`features_of` turns one Ingress's typed annotations into `NginxFeatures` (None for an Ingress that
uses none of them, which then costs nothing anywhere); the host merge (routing.merge) asks it for
each path's filters, whether the path makes its host a regex host (routing.ingress.regex_paths),
and for the canary rules (routing.ingress.canary). Facts and quirks are ingress-nginx's:

- `rewrite-target` is nginx's `rewrite "(?i)<path>" <target> break`: the whole path becomes the
  target, `$1`.. from the rule path's groups; a target equal to the path changes nothing;
- `x-forwarded-prefix` is only sent with a rewrite (ingress-nginx sets it in the rewrite branch);
- `temporal-redirect` wins over `permanent-redirect`; codes outside 300-307 (temporal) and 300-308
  (permanent) fall back to 302 and 301; a code that is not a number turns the redirect off;
- `app-root` answers a request for "/" with 302 to scheme://Host<app-root>, before anything else;
- the security annotations (source ranges, limits, CORS) are routing.ingress.security's, attached to
  every route of the Ingress, its defaultBackend routes too (`secure`).

The traffic annotations (timeouts, retries, balancing, affinity, backend protocol) are a policy layer of
the Ingress (routing.ingress.nginx_traffic), applied with the traffic policies (routing.policy.index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from proxy.routing.access import Refuse
from proxy.routing.filters import (
    FixedRedirect,
    HeaderEdits,
    RegexRewrite,
    RequestHeaderModifier,
    RootRedirect,
    compose,
)
from proxy.routing.global_config import GlobalConfig
from proxy.routing.ingress.annotations import IngressAnnotations
from proxy.routing.ingress.canary import CanarySpec, canary_spec
from proxy.routing.ingress.nginx_traffic import traffic_layer, used_traffic
from proxy.routing.ingress.security import LIMIT_STATUS, Security, security_of
from proxy.routing.model import Route
from proxy.routing.policy.spec import PolicySpec

_GROUP = re.compile(r"\$([0-9])")


@dataclass(frozen=True, slots=True)
class NginxFeatures:
    """What one Ingress's ingress-nginx annotations ask of its routes (compiled, ready to attach)."""

    use_regex: bool = False
    rewrite: str = ""  # the target as written; "" none
    parts: tuple[str | int, ...] = ()  # the target split into text and group numbers
    forwarded_prefix: RequestHeaderModifier | None = None
    redirect: FixedRedirect | None = None
    app_root: RootRedirect | None = None
    canary: CanarySpec | None = None
    # The traffic annotations' policy layer (routing.ingress.nginx_traffic), put on the routes by the policy
    # index; a refusal answers every path of the Ingress (fail closed).
    policy: PolicySpec | None = None
    refusal: Refuse | None = None
    security: Security | None = None

    def needs_rewrite(self, path: str) -> bool:
        return bool(self.rewrite) and self.rewrite != path

    def regex_host(self, path: str) -> bool:
        """True when this path makes every path of its host a case-insensitive regex (nginx's `~*`)."""
        return self.use_regex or self.needs_rewrite(path)

    def route(self, route: Route) -> Route:
        """`route` (an Ingress path of this Ingress) with the filters the annotations add. (A rewritten path
        always makes a regex host, whose compilation reports a path that is not a regular expression.)"""
        items: list[Any] = list(route.filters.request) if route.filters is not None else []
        added = 0
        if self.refusal is not None:
            items.append(self.refusal)
            added += 1
        if self.redirect is not None:
            items.append(self.redirect)
            added += 1
        if route.path and self.needs_rewrite(route.path):
            pattern, _ = path_pattern(route.path, anchored=False)
            items.append(RegexRewrite(pattern, self.parts))
            if self.forwarded_prefix is not None:
                items.append(self.forwarded_prefix)
            added += 1
        if added:
            route = replace(route, filters=compose(items))
        return self.secure(route)

    def secure(self, route: Route) -> Route:
        """`route` (any route of this Ingress, a defaultBackend's too) with the security annotations' filters
        and limits."""
        return route if self.security is None else self.security.apply(route)


def path_pattern(path: str, *, anchored: bool) -> tuple[re.Pattern[str], str]:
    """A rule path as nginx's case-insensitive regex; `anchored`: matching the start of the request path
    (a `~* "^<path>"` location, for fullmatch: what follows is free). A path that does not compile is
    matched as literal text, and the problem says so."""
    problem = ""
    try:
        source = f"(?:{path}).*" if anchored else path
        pattern = re.compile(source, re.IGNORECASE | re.DOTALL)
    except (re.error, OverflowError, RecursionError) as error:
        problem = f"path {path!r} is not a valid regular expression ({error}); it is matched as literal text"
        literal = re.escape(path)
        pattern = re.compile(f"{literal}.*" if anchored else literal, re.IGNORECASE | re.DOTALL)
    return pattern, problem


def features_of(values: IngressAnnotations, *, zone: str = "",
                config: GlobalConfig | None = None) -> tuple[NginxFeatures | None, list[str]]:
    """The compiled features (None when the Ingress uses none of them) and problems, as messages; `zone`:
    "namespace/name" of the Ingress (its limits' counters are shared by its routes); `config`: the global
    configuration (the limits' status codes)."""
    problems: list[str] = []
    canary, canary_problems = canary_spec(values)
    problems.extend(canary_problems)
    if canary is not None:
        # A canary only lends its backend to a main Ingress's path: its other annotations are ignored (ingress-nginx).
        ignored = used_traffic(values)
        if ignored:
            problems.append(f"annotations {', '.join(ignored)} are ignored on a canary Ingress: the main Ingress's "
                            "traffic settings apply to both backends")
        return NginxFeatures(canary=canary), problems
    policy, refusal, traffic_problems = traffic_layer(values)
    problems.extend(traffic_problems)
    redirect = _redirect(values, problems)
    rewrite = values.rewrite_target
    parts: tuple[str | int, ...] = ()
    if rewrite:
        pieces: list[str | int] = []
        last = 0
        for found in _GROUP.finditer(rewrite):
            pieces.extend((rewrite[last:found.start()], int(found[1])))
            last = found.end()
        pieces.append(rewrite[last:])
        parts = tuple(piece for piece in pieces if piece != "")
    prefix = None
    if values.x_forwarded_prefix:
        if rewrite:
            prefix = RequestHeaderModifier(HeaderEdits(set=((b"X-Forwarded-Prefix",
                                                             values.x_forwarded_prefix.encode("latin-1")),)))
        else:
            problems.append("annotation x-forwarded-prefix has no effect without rewrite-target (as in ingress-nginx)")
    root = RootRedirect(values.app_root.encode("latin-1")) if values.app_root else None
    security, security_problems = security_of(
        values, zone=zone, request_status=config.limit_req_status_code if config is not None else LIMIT_STATUS,
        connection_status=config.limit_conn_status_code if config is not None else LIMIT_STATUS)
    problems.extend(security_problems)
    if not (values.use_regex or rewrite or redirect or root or policy or refusal or security):
        return None, problems
    return NginxFeatures(use_regex=values.use_regex, rewrite=rewrite, parts=parts, forwarded_prefix=prefix,
                         redirect=redirect, app_root=root, policy=policy, refusal=refusal,
                         security=security), problems


def _redirect(values: IngressAnnotations, problems: list[str]) -> FixedRedirect | None:
    """temporal-redirect first, then permanent-redirect (ingress-nginx's order)."""
    for url, code, name, low, high, default in (
            (values.temporal_redirect, values.temporal_redirect_code, "temporal-redirect-code", 300, 307, 302),
            (values.permanent_redirect, values.permanent_redirect_code, "permanent-redirect-code", 300, 308, 301)):
        if not url:
            continue
        if name in values.invalid:
            return None  # its warning says the redirect is disabled
        if not low <= code <= high:
            problems.append(f"annotation {name}: {code} is not a redirect code from {low} to {high}; {default} used")
            code = default
        return FixedRedirect(code, url.encode("latin-1"))
    return None


__all__ = ["NginxFeatures", "features_of", "path_pattern"]
