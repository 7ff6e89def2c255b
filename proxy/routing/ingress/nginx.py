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
  every route of the Ingress, its defaultBackend routes too (`secure`), and so is `auth-url` external
  authentication (routing.ingress.auth_url).

The traffic annotations (timeouts, retries, balancing, affinity, backend protocol) are a policy layer of
the Ingress (routing.ingress.nginx_traffic), applied with the traffic policies (routing.policy.index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from proxy.routing.access import Refuse
from proxy.routing.clusters import cluster_key, split_cluster_key
from proxy.routing.filters import (
    FixedRedirect,
    HeaderEdits,
    Mirror,
    RegexRewrite,
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RootRedirect,
    URLRewrite,
    WwwRedirect,
    compose,
)
from proxy.routing.global_config import NO_AUTH_LOCATIONS, GlobalConfig
from proxy.routing.ingress.annotations import DEFAULTS, IngressAnnotations
from proxy.routing.ingress.auth_url import AuthLayer, auth_layer_of, global_auth_layer
from proxy.routing.ingress.canary import CanarySpec, canary_spec
from proxy.routing.ingress.mirror import mirror_of
from proxy.routing.ingress.nginx_traffic import traffic_layer
from proxy.routing.ingress.secrets import SecretReader
from proxy.routing.ingress.security import LIMIT_STATUS, Security, security_of
from proxy.routing.model import ErrorPages, Route
from proxy.routing.policies import RoutePolicy
from proxy.routing.policy.spec import PolicySpec

_GROUP = re.compile(r"\$([0-9])")
# What ingress-nginx's custom-headers accepts in a header's name and value (customheaders.ValidHeader/ValidValue).
_HEADER_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_HEADER_VALUE = re.compile(r"[a-zA-Z0-9_ :;.,\\/\"'?!(){}\[\]@<>=\-+*#$&`|~^%]+")


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
    external_auth: AuthLayer | None = None  # auth-url (routing.ingress.auth_url)
    # proxy-body-size in bytes (0: no limit); -1: not set (the process's default).
    body_limit: int = -1
    # default-backend's cluster key ("" none) and the custom-http-errors it answers.
    errors_cluster: str = ""
    error_codes: frozenset[int] = frozenset()
    # from-to-www-redirect's redirect, upstream-vhost's Host; on every route of the Ingress.
    www: WwwRedirect | None = None
    vhost: URLRewrite | None = None
    access_log: bool = True  # enable-access-log
    mirror: Mirror | None = None  # mirror-target (routing.ingress.mirror), on every route of the Ingress
    http10: bool = False  # proxy-http-version 1.0 (RoutePolicy.http10)
    buffer_body: bool = False  # proxy-request-buffering on (RoutePolicy.buffer_body)
    # The ConfigMap's no-auth-locations: paths starting with one ask no authentication (auth-url, basic, digest).
    no_auth: tuple[str, ...] = ()
    # custom-headers: the answers' headers, or a refusal (fail closed); on every route of the Ingress.
    headers: ResponseHeaderModifier | Refuse | None = None
    # The ConfigMap key proxy-set-headers: request headers set on every request to the pods (every route).
    upstream_headers: RequestHeaderModifier | None = None

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
        and limits, its body size limit, error pages, www redirect and upstream Host."""
        added = [item for item in (self.www, self.vhost, self.headers, self.upstream_headers) if item is not None]
        if added:
            current = route.filters
            items: list[Any] = [*current.request, *current.response] if current is not None else []
            filters = compose([*dict.fromkeys([*items, *added]), *(current.mirrors if current is not None else ())])
            route = replace(route, filters=filters)
        if self.mirror is not None:
            current = route.filters
            items = [*current.request, *current.response, *current.mirrors] if current is not None else []
            route = replace(route, filters=compose([*items, self.mirror]))
        if self.body_limit >= 0:
            route = replace(route, body_limit=self.body_limit)
        if not self.access_log:
            route = replace(route, access_log=False)
        if self.errors_cluster and route.cluster:
            route = replace(route, errors=ErrorPages(self.errors_cluster, self.error_codes, _error_fields(route),
                                                     unset_names(self.upstream_headers)))
        if self.http10:
            route = replace(route, policy=replace(route.policy or RoutePolicy(), http10=True))
        if self.buffer_body:
            route = replace(route, policy=replace(route.policy or RoutePolicy(), buffer_body=True))
        exempt = bool(self.no_auth) and bool(route.path) and route.path.startswith(self.no_auth)
        if self.security is not None:
            route = self.security.apply(route, skip_auth=exempt)
        auth = self.external_auth
        if auth is None or (exempt and auth.refusal is None):
            return route
        return auth.apply(route)


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


# What a canary Ingress's own annotations may say: its canary-* rules, and how affinity treats it.
CANARY_OWN = frozenset({"canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
                        "canary-by-cookie", "canary-weight", "canary-weight-total", "affinity-canary-behavior"})


def features_of(values: IngressAnnotations, *, zone: str = "",
                hosts: tuple[str, ...] = (), secrets: SecretReader | None = None,
                config: GlobalConfig | None = None) -> tuple[NginxFeatures | None, list[str]]:
    """The compiled features (None when the Ingress uses none of them) and problems, as messages; `zone`:
    "namespace/name" of the Ingress (its limits' counters are shared by its routes); `secrets`: where the
    Secrets of auth-secret and proxy-ssl-secret are read; `config`: the global configuration (the limits'
    status codes)."""
    problems: list[str] = []
    canary, canary_problems = canary_spec(values)
    problems.extend(canary_problems)
    if canary is not None:
        # A canary only lends its backend to a main Ingress's path: its other annotations are ignored (ingress-nginx),
        # each named in a warning (the ones it sets itself: a ConfigMap's global forms are not the canary's doing).
        ignored = sorted(name for name in values.given if name not in CANARY_OWN)
        if ignored:
            problems.append(f"annotations {', '.join(ignored)} are ignored on a canary Ingress: the main Ingress's "
                            "settings apply to both backends")
        return NginxFeatures(canary=canary), problems
    policy, refusal, traffic_problems = traffic_layer(values, secrets)
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
        values, zone=zone, secrets=secrets,
        request_status=config.limit_req_status_code if config is not None else LIMIT_STATUS,
        connection_status=config.limit_conn_status_code if config is not None else LIMIT_STATUS)
    problems.extend(security_problems)
    external_auth, auth_problems = auth_layer_of(values, zone=zone, secrets=secrets)
    if (external_auth is None and not values.auth_url and values.enable_global_auth and config is not None
            and config.global_auth):
        external_auth, auth_problems = global_auth_layer(config)  # the ConfigMap's global-auth-url
    problems.extend(auth_problems)
    body_limit = values.proxy_body_size
    errors = cluster_key(zone.partition("/")[0], values.default_backend, "") if values.default_backend else ""
    codes = values.custom_http_errors
    if config is not None and config.default_backend:
        # ingress-nginx's default backend (--default-backend-service) answers for Ingresses without their own, with
        # the ConfigMap's custom-http-errors where the Ingress lists none.
        codes = codes or config.custom_http_errors
        errors = errors or config.default_backend
    if values.custom_http_errors and not errors:
        problems.append("annotation custom-http-errors has no effect without default-backend or "
                        "--default-backend-service")
    www = None
    if values.from_to_www_redirect:
        pairs = extra_hosts(values, hosts)
        redirected = tuple(sorted(pair for pair in pairs if pair[0] not in values.server_alias))
        status = config.http_redirect_code if config is not None else 308
        www = WwwRedirect(redirected, status) if redirected else None
    vhost = URLRewrite(hostname=values.upstream_vhost.encode("latin-1")) if values.upstream_vhost else None
    mirror, mirror_problems = mirror_of(values, zone.partition("/")[0])
    http10 = values.proxy_http_version == "1.0"
    problems.extend(mirror_problems)
    headers = _custom_headers(values, secrets, config, problems)
    buffer_body = values.proxy_request_buffering == "on"
    upstream_headers = proxy_set_headers(config)
    no_auth = ((config.no_auth_locations if config is not None else NO_AUTH_LOCATIONS)
               if external_auth is not None or values.auth_type else ())
    if not (values.use_regex or rewrite or redirect or root or policy or refusal or security or body_limit >= 0
            or errors or www or vhost or not values.enable_access_log or external_auth or mirror or http10
            or headers or buffer_body or upstream_headers):
        return None, problems
    return NginxFeatures(use_regex=values.use_regex, rewrite=rewrite, parts=parts, forwarded_prefix=prefix,
                         redirect=redirect, app_root=root, policy=policy, refusal=refusal,
                         security=security, body_limit=body_limit, errors_cluster=errors,
                         error_codes=frozenset(codes), www=www, vhost=vhost,
                         access_log=values.enable_access_log, external_auth=external_auth,
                         mirror=mirror, http10=http10, headers=headers, buffer_body=buffer_body,
                         no_auth=no_auth, upstream_headers=upstream_headers), problems


def proxy_set_headers(config: GlobalConfig | None) -> RequestHeaderModifier | None:
    """The ConfigMap's proxy-set-headers as a request header edit (None: none), on every Ingress location and on the
    default server's (nginx.tmpl sets `$all.ProxySetHeaders` in each location)."""
    if config is None or not config.upstream_headers:
        return None
    return RequestHeaderModifier(HeaderEdits(set=tuple(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in config.upstream_headers)))


def unset_names(headers: RequestHeaderModifier | None) -> frozenset[bytes]:
    """The names proxy-set-headers sets, which ingress-nginx's custom error location does not send (nginx.tmpl's
    CUSTOM_ERRORS location has proxy_set_header directives of its own, so inherits none; the ConfigMap's are set in
    the route's location only)."""
    if headers is None:
        return frozenset()
    return frozenset(name.lower() for name, _ in headers.edits.set)


@dataclass(frozen=True, slots=True)
class DefaultBackend:
    """--default-backend-service as ingress-nginx's default server "_" serves it (what no rule matches): its cluster
    key, the ConfigMap's custom-http-errors (the server-wide `error_page` sending those answers back to it with
    X-Code) and proxy-set-headers. Named hosts' root locations take these from their oldest Ingress instead."""

    cluster: str
    codes: frozenset[int] = frozenset()
    headers: RequestHeaderModifier | None = None
    # The default server's requests are access-logged only with enable-access-log-for-default-backend.
    access_log: bool = False

    @classmethod
    def of(cls, config: GlobalConfig | None) -> DefaultBackend | None:
        """None without --default-backend-service."""
        if config is None or not config.default_backend:
            return None
        return cls(config.default_backend, frozenset(config.custom_http_errors), proxy_set_headers(config),
                   config.enable_access_log_for_default_backend)


def _custom_headers(values: IngressAnnotations, secrets: SecretReader | None, config: GlobalConfig | None,
                    problems: list[str]) -> ResponseHeaderModifier | Refuse | None:
    """custom-headers as a response header edit, or a refusal where ingress-nginx denies the location (its
    customheaders parser): a ConfigMap missing, a header name or value it does not accept, or a name the
    ConfigMap key global-allowed-response-headers does not list."""
    if "custom-headers" in values.invalid:
        return Refuse(503, reason="invalid custom-headers annotation")  # its warning says so
    if not values.custom_headers:
        return None
    data, why = secrets.config_map(values.custom_headers) if secrets is not None else (None, "no ConfigMaps read")
    if data is not None:
        allowed = config.global_allowed_response_headers if config is not None else ()
        for name, value in sorted(data.items()):
            if _HEADER_NAME.fullmatch(name) is None:
                why = f"header name {name!r:.60} is not valid"
            elif _HEADER_VALUE.fullmatch(value) is None:
                why = f"the value of header {name} is not valid"
            elif name not in allowed:
                why = (f"header {name} is not allowed: list it in the ConfigMap key global-allowed-response-headers "
                       "(--configmap)")
            else:
                continue
            data = None
            break
    if data is None:
        problems.append(f"annotation custom-headers: {why}; every route of the Ingress answers 503 (fail closed, as "
                        "ingress-nginx)")
        return Refuse(503, reason="custom-headers cannot be honoured")
    if not data:
        return None
    return ResponseHeaderModifier(HeaderEdits(set=tuple((name.encode("latin-1"), value.encode("latin-1"))
                                                        for name, value in sorted(data.items()))))


def _error_fields(route: Route) -> bytes:
    """The fields ingress-nginx's custom error location sends about the route ($namespace, $ingress_name,
    $service_name, $service_port)."""
    _, service, port = split_cluster_key(route.cluster)
    return (f"X-Namespace: {route.namespace}\r\nX-Ingress-Name: {route.ingress}\r\nX-Service-Name: {service}\r\n"
            f"X-Service-Port: {port}\r\n").encode("latin-1")


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


def extra_hosts(annotations: IngressAnnotations, hosts: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(other name, rule host) pairs: server-alias's names for the first rule host, then from-to-www-redirect's
    other spelling of each rule host (a redirect filter answers there); names the rules already use are skipped."""
    if not hosts or annotations is DEFAULTS:
        return ()
    pairs = [(alias, hosts[0]) for alias in annotations.server_alias if alias not in hosts]
    if annotations.from_to_www_redirect:
        taken = {alias for alias, _ in pairs}
        pairs += [(other, host) for host in hosts if (other := www_twin(host)) and other not in hosts
                  and other not in taken]
    return tuple(pairs)


def www_twin(host: str) -> str:
    """The other spelling of a host for from-to-www-redirect ("" for a wildcard)."""
    if host.startswith("*."):
        return ""
    return host[4:] if host.startswith("www.") else "www." + host


__all__ = ["DefaultBackend", "NginxFeatures", "extra_hosts", "features_of", "path_pattern", "proxy_set_headers",
           "www_twin"]
