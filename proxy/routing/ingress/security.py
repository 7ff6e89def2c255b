"""ingress-nginx's security annotations, compiled: source ranges, per-client limits and CORS.

`security_of` turns one Ingress's typed annotations into a `Security` (None when it uses none of them)
that routing.ingress.nginx attaches to every route of the Ingress, its defaultBackend routes included
(a protection must not be bypassed by a path no rule names). Facts are ingress-nginx's:

- `allowlist-source-range` / `whitelist-source-range` and `denylist-source-range`: 403 for a client
  outside the allowlist or inside the denylist; an invalid value fails closed: every request of the
  Ingress gets 503 (its location is "denied"), never served unprotected;
- `limit-connections`, `limit-rpm`, `limit-rps`: per client address and replica, one zone per Ingress
  shared by its routes, checked in that order; `limit-rps`/`limit-rpm` are nginx's `limit_req ... burst=
  limit x limit-burst-multiplier nodelay`, which lets burst + 1 requests through at once and then the
  rate; `limit-whitelist` addresses are never limited; over a limit: 503 (`LIMIT_STATUS`);
- `auth-tls-*`: the client certificate check (routing.ingress.client_auth), 503 when it cannot be honoured;
- `enable-cors` and the `cors-*` annotations: the Cors filter in its ingress-nginx mode, with ingress-nginx's
  defaults (origin "*", credentials true, max-age 1728000, its methods and headers lists);
- `auth-type: basic` with `auth-secret` (`auth-secret-type`, `auth-realm`): the BasicAuth filter (routing.auth)
  with the Secret's users compiled; 401 with `WWW-Authenticate: Basic realm="..."` without valid credentials.
  `auth-type: digest`: the DigestAuth filter (routing.digest_auth) with the htdigest users of `auth-realm`.
  A missing Secret (or key `auth`), an invalid annotation, or a Secret in another namespace: every request of
  the Ingress gets 503 (ingress-nginx's denied location).
  Without `auth-type` nothing is asked, as in ingress-nginx (a warning says `auth-secret` alone does nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from proxy.routing.access import AddressSet, Refuse, SourceRange
from proxy.routing.auth import BasicAuth, parse_auth_map, parse_htpasswd
from proxy.routing.digest_auth import DigestAuth, parse_htdigest
from proxy.routing.filters import Cors, compose
from proxy.routing.ingress.annotations import IngressAnnotations, cors_allow_origin
from proxy.routing.ingress.client_auth import client_auth_of
from proxy.routing.ingress.secrets import SecretReader
from proxy.routing.model import Route
from proxy.routing.policies import ClientLimit, RateLimit, RoutePolicy

# The status of a request over limit-connections, limit-rpm or limit-rps: ingress-nginx's default
# `limit-req-status-code` / `limit-conn-status-code` (its ConfigMap keys: routing.global_config).
LIMIT_STATUS = 503


@dataclass(frozen=True, slots=True)
class Security:
    """The filters (Refuse, SourceRange, Cors) and the per-client limit one Ingress asks of its routes."""

    filters: tuple[Any, ...] = ()
    client_limit: ClientLimit | None = None

    def apply(self, route: Route, *, skip_auth: bool = False) -> Route:
        """`route` with the filters and limits; `skip_auth`: without basic/digest auth (no-auth-locations)."""
        changes: dict[str, Any] = {}
        own = self.filters
        if skip_auth:
            own = tuple(item for item in own if not isinstance(item, (BasicAuth, DigestAuth)))
        if own:
            items: list[Any] = list(route.filters.request) if route.filters is not None else []
            items += route.filters.response if route.filters is not None else ()
            items += own
            mirrors = route.filters.mirrors if route.filters is not None else ()
            changes["filters"] = compose([*dict.fromkeys(items), *mirrors])
        if self.client_limit is not None:
            policy = route.policy or RoutePolicy()
            changes["policy"] = replace(policy, client_limit=self.client_limit)
        return replace(route, **changes) if changes else route


_AUTH = frozenset({"auth-type", "auth-secret", "auth-secret-type"})


def security_of(values: IngressAnnotations, *, zone: str, secrets: SecretReader | None = None,
                request_status: int = LIMIT_STATUS,
                connection_status: int = LIMIT_STATUS) -> tuple[Security | None, list[str]]:
    """The compiled security features of one Ingress (None: none used) and problems, as messages.
    `zone`: "namespace/name" of the Ingress, whose routes share the limits' counters. `secrets`: where
    auth-secret is read (None: nowhere, every Secret missing). `request_status`, `connection_status`: the
    answers over limit-rps/-rpm and over limit-connections (the ConfigMap's)."""
    problems: list[str] = []
    broken = sorted(({"whitelist-source-range", "denylist-source-range"} | _AUTH) & values.invalid)
    if broken:
        # Its warning is the annotation's own (parse_annotations): nothing else of the Ingress's security matters.
        return Security(filters=(Refuse(503, reason=f"invalid {broken[0]} annotation"),)), problems
    filters: list[Any] = []
    client_auth, client_auth_problems = client_auth_of(values, namespace=zone.partition("/")[0])
    problems.extend(client_auth_problems)
    if client_auth is not None:
        filters.append(client_auth)
    if values.auth_type:
        auth = _basic_auth(values, secrets, problems)
        if isinstance(auth, Refuse):
            return Security(filters=(auth,)), problems
        filters.append(auth)
    elif values.auth_secret:
        problems.append("annotation auth-secret has no effect without auth-type (as in ingress-nginx): nothing is "
                        "asked of clients")
    allow = AddressSet(values.whitelist_source_range) if values.whitelist_source_range else None
    deny = AddressSet(values.denylist_source_range) if values.denylist_source_range else None
    if allow is not None or deny is not None:
        filters.append(SourceRange(allow=allow, deny=deny))
    if values.enable_cors:
        cors = _cors(values, problems)
        if cors is not None:
            filters.append(cors)
    limit = _client_limit(values, zone, request_status, connection_status)
    if not filters and limit is None:
        return None, problems
    return Security(filters=tuple(filters), client_limit=limit), problems


def _basic_auth(values: IngressAnnotations, secrets: SecretReader | None,
                problems: list[str]) -> BasicAuth | DigestAuth | Refuse:
    """The BasicAuth filter of auth-type basic, or a refusal (503) when it cannot be honoured."""
    if not values.auth_secret:
        problems.append("annotation auth-type needs auth-secret; the Ingress's paths answer 503 (as ingress-nginx)")
        return Refuse(503, reason="auth-secret missing")
    data, problem = secrets.data(values.auth_secret) if secrets is not None else (None, "no Secrets read")
    if data is not None and values.auth_secret_type == "auth-file" and "auth" not in data:
        data, problem = None, f"Secret {values.auth_secret} has no key auth (auth-secret-type auth-file)"
    if data is None:
        problems.append(f"annotation auth-secret: {problem}; the Ingress's paths answer 503 (as ingress-nginx)")
        return Refuse(503, reason="auth-secret cannot be used")
    if values.auth_type == "digest":
        if values.auth_secret_type == "auth-map":
            problems.append("annotation auth-secret-type: auth-map holds no digest users; the Ingress's paths answer "
                            "503 (use an htdigest file in key auth)")
            return Refuse(503, reason="auth-map with auth-type digest")
        digest_users, messages = parse_htdigest(data["auth"].decode("utf-8", "replace"), values.auth_realm)
        problems.extend(f"annotation auth-secret: Secret {values.auth_secret}: {message}" for message in messages)
        if not digest_users:
            problems.append(f"annotation auth-secret: Secret {values.auth_secret} holds no user of realm "
                            f"{values.auth_realm!r}; every request gets 401")
        return DigestAuth.of(values.auth_realm, digest_users)
    if values.auth_secret_type == "auth-map":
        users, messages = parse_auth_map({user: value.decode("utf-8", "replace") for user, value in data.items()})
    else:
        users, messages = parse_htpasswd(data["auth"].decode("utf-8", "replace"))
    problems.extend(f"annotation auth-secret: Secret {values.auth_secret}: {message}" for message in messages)
    if not users:
        problems.append(f"annotation auth-secret: Secret {values.auth_secret} holds no user; every request gets 401")
    return BasicAuth.of(values.auth_realm, users)


def _client_limit(values: IngressAnnotations, zone: str, request_status: int,
                  connection_status: int) -> ClientLimit | None:
    multiplier = max(0, values.limit_burst_multiplier)

    def bucket(limit: int, per: float) -> RateLimit | None:
        if limit <= 0:
            return None
        # nginx's limit_req: burst b (= limit x multiplier) with nodelay passes b + 1 requests at once; the
        # bucket holds requests + burst tokens.
        return RateLimit(requests=limit, per=per, burst=limit * multiplier + 1 - limit, per_client=True,
                         status=request_status)

    rpm, rps = bucket(values.limit_rpm, 60.0), bucket(values.limit_rps, 1.0)
    connections = max(0, values.limit_connections)
    if rpm is None and rps is None and not connections:
        return None
    exempt = AddressSet(values.limit_whitelist) if values.limit_whitelist else None
    return ClientLimit(zone=zone, connections=connections, rpm=rpm, rps=rps, exempt=exempt, status=request_status,
                       connection_status=connection_status)


def _cors(values: IngressAnnotations, problems: list[str]) -> Cors | None:
    common: dict[str, Any] = {
        "methods": values.cors_allow_methods, "headers": values.cors_allow_headers,
        "expose": values.cors_expose_headers, "credentials": values.cors_allow_credentials,
        "max_age": values.cors_max_age, "nginx": True}
    if values.cors_allow_origin == ("*",):
        return Cors(any_origin=True, **common)
    origins: list[tuple[str, str, int]] = []
    for entry in values.cors_allow_origin:
        if cors_allow_origin.ENTRY.fullmatch(entry) is None:
            problems.append(f"annotation cors-allow-origin: {entry!r:.80} is not an origin (scheme://host[:port], "
                            "\"null\" or \"*\"); skipped, as ingress-nginx does")
            continue
        if entry == "null":
            origins.append(("null", "", 0))
            continue
        scheme, _, rest = entry.partition("://")
        host, _, port = rest.partition(":")
        origins.append((scheme, host.lower(), int(port) if port else 0))
    if not origins:
        problems.append("annotation cors-allow-origin names no valid origin: no CORS headers are sent (as "
                        "ingress-nginx)")
        return None
    return Cors(origins=tuple(origins), **common)


__all__ = ["LIMIT_STATUS", "Security", "security_of"]
