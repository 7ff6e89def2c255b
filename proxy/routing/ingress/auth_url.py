"""ingress-nginx's external authentication annotations (`auth-url` and its companions), compiled.

`auth_layer_of` turns one Ingress's typed annotations into an `AuthLayer` (None when `auth-url` is not set)
that routing.ingress.nginx attaches to every route of the Ingress, its defaultBackend routes included: the
routes' policy gets an `ExternalAuth` (asked by proxy.http.auth_request after the filters and limits, as
nginx's access phase follows its rewrite and preaccess phases). Fail closed, as ingress-nginx denies the
location: an `auth-url` that is not a URL, a variable we do not understand in it, an invalid `auth-method`,
`auth-response-headers`, `auth-cache-duration`, `auth-request-redirect` or `auth-always-set-cookie` make
every route of the Ingress answer 503, with a warning naming the annotation.

`auth-proxy-set-headers` names a ConfigMap whose data are headers sent to the auth service (values may use
the variables above); a missing ConfigMap, one of another namespace or a bad header name fail closed too.

Difference: the cache key space is the Ingress (nginx's: the location).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from proxy.routing.access import Refuse
from proxy.routing.external_auth import ExternalAuth, Template, cache_validity, compile_template
from proxy.routing.filters import compose
from proxy.routing.global_config import GLOBAL_AUTH_FAIL_CLOSED, GlobalConfig
from proxy.routing.ingress.annotations import DEFAULTS, IngressAnnotations
from proxy.routing.ingress.secrets import SecretReader
from proxy.routing.model import Route
from proxy.routing.policies import RoutePolicy

# Annotations whose invalid value makes ingress-nginx reject the whole auth configuration: fail closed.
_FAIL_CLOSED = ("auth-url", "auth-method", "auth-response-headers", "auth-cache-duration", "auth-request-redirect",
                "auth-always-set-cookie", "auth-proxy-set-headers")
_COMPANIONS = ("auth_method", "auth_signin", "auth_response_headers", "auth_request_redirect", "auth_cache_key",
               "auth_keepalive", "auth_proxy_set_headers")
_HEADER_NAME = re.compile(r"[a-zA-Z0-9_-]+")  # authreq.ValidHeader


@dataclass(frozen=True, slots=True)
class AuthLayer:
    """What `auth-url` asks of every route of one Ingress: the external auth, or a refusal (503)."""

    auth: ExternalAuth | None = None
    refusal: Refuse | None = None

    def apply(self, route: Route) -> Route:
        if self.refusal is not None:
            items: list[Any] = list(route.filters.request) if route.filters is not None else []
            items += route.filters.response if route.filters is not None else ()
            mirrors = route.filters.mirrors if route.filters is not None else ()
            return replace(route, filters=compose([*dict.fromkeys([*items, self.refusal]), *mirrors]))
        policy = route.policy or RoutePolicy()
        return replace(route, policy=replace(policy, auth=self.auth))


def auth_layer_of(values: IngressAnnotations, *, zone: str,
                  secrets: SecretReader | None = None) -> tuple[AuthLayer | None, list[str]]:
    """The compiled external auth of one Ingress (None: no `auth-url`) and problems, as messages; `secrets`:
    where auth-proxy-set-headers's ConfigMap is read."""
    problems: list[str] = []
    broken = [name for name in _FAIL_CLOSED if name in values.invalid]
    if broken:
        # The annotation's own warning (parse_annotations) says the routes answer 503.
        return _refuse(f"invalid {broken[0]} annotation"), problems
    if not values.auth_url:
        used = [name.replace("_", "-") for name in _COMPANIONS if getattr(values, name)]
        if used:
            problems.append(f"annotations {', '.join(used)} have no effect without auth-url")
        return None, problems
    url, unknown = compile_template(values.auth_url)
    if unknown:
        problems.append(f"annotation auth-url: nginx variable ${unknown[0]} is not supported; every route of the "
                        "Ingress answers 503 (fail closed)")
        return _refuse("unsupported variable in auth-url"), problems
    authority = values.auth_url.partition("://")[2]
    authority = re.split(r"[/?]", authority, maxsplit=1)[0]
    host_text = authority if authority.startswith("[") else authority.rsplit(":", 1)[0] if ":" in authority \
        else authority
    host, _ = compile_template(host_text)
    signin: Template | None = None
    if values.auth_signin:
        signin, unknown = compile_template(values.auth_signin)
        if unknown:
            problems.append(f"annotation auth-signin: nginx variable ${unknown[0]} is not supported; no sign-in "
                            "redirect (the auth service's 401 is returned)")
            signin = None
    cache_key: Template | None = None
    if values.auth_cache_key:
        cache_key, unknown = compile_template(values.auth_cache_key)
        if unknown:
            problems.append(f"annotation auth-cache-key: nginx variable ${unknown[0]} is not supported; auth "
                            "answers are not cached")
            cache_key = None
    keepalive = values.auth_keepalive
    if keepalive and "$" in authority:
        problems.append("annotation auth-keepalive: auth-url has a variable in its host; no keepalive (as "
                        "ingress-nginx)")
        keepalive = 0
    if keepalive and (values.auth_keepalive_requests <= 0 or values.auth_keepalive_timeout <= 0):
        problems.append("annotations auth-keepalive-requests and auth-keepalive-timeout must be above 0; no "
                        "keepalive (as ingress-nginx)")
        keepalive = 0
    set_headers: tuple[tuple[bytes, Template], ...] = ()
    if values.auth_proxy_set_headers:
        data, why = (secrets.config_map(values.auth_proxy_set_headers) if secrets is not None
                     else (None, "no ConfigMaps read"))
        if data is not None:
            bad = next((name for name in sorted(data) if _HEADER_NAME.fullmatch(name) is None), None)
            if bad is not None:
                data, why = None, f"header name {bad!r:.60} is not valid"
        if data is not None:
            compiled = []
            for name, value in sorted(data.items()):
                template, unknown = compile_template(value)
                if "\r" in value or "\n" in value or not value.isascii():
                    data, why = None, f"the value of header {name} is not one line of ASCII"
                    break
                if unknown:
                    data, why = None, f"nginx variable ${unknown[0]} in header {name} is not supported"
                    break
                compiled.append((name.encode("latin-1"), template))
            set_headers = tuple(compiled)
        if data is None:
            problems.append(f"annotation auth-proxy-set-headers: {why}; every route of the Ingress answers 503 (fail "
                            "closed, as ingress-nginx)")
            return _refuse("auth-proxy-set-headers cannot be honoured"), problems
    auth = ExternalAuth(
        url=url, host=host, zone=zone, method=values.auth_method, signin=signin,
        redirect_param=values.auth_signin_redirect_param or "rd",
        response_headers=tuple(name.encode("latin-1") for name in values.auth_response_headers),
        request_redirect=values.auth_request_redirect.encode("latin-1"),
        cache_key=cache_key, cache_valid=cache_validity(values.auth_cache_duration) if cache_key else (),
        always_set_cookie=values.auth_always_set_cookie, keepalive=keepalive, set_headers=set_headers,
        set_names=frozenset(name.lower() for name, _ in set_headers),
        keepalive_timeout=max(1, values.auth_keepalive_timeout),
        keepalive_requests=max(1, values.auth_keepalive_requests),
        connect_timeout=float(values.proxy_connect_timeout or 5),
        timeout=float((values.proxy_connect_timeout or 5) + (values.proxy_read_timeout or 60)))
    return AuthLayer(auth=auth), problems


# The zone (cache key space) of the global external auth: one for every Ingress it protects.
GLOBAL_ZONE = "<global-auth>"


def global_auth_layer(config: GlobalConfig) -> tuple[AuthLayer | None, list[str]]:
    """The ConfigMap's global external auth (`global-auth-url` and companions) for an Ingress without its own
    auth-url and without enable-global-auth "false" (ingress-nginx's shouldApplyGlobalAuth); None: not set. A bad
    key of it refuses (503) instead of serving unprotected."""
    broken = [key for key in GLOBAL_AUTH_FAIL_CLOSED if key in config.invalid_keys]
    if broken:
        return _refuse(f"invalid ConfigMap key {broken[0]}"), []  # the ConfigMap's own warning says so
    if not config.global_auth_url:
        return None, []
    values = replace(
        DEFAULTS, auth_url=config.global_auth_url, auth_method=config.global_auth_method,
        auth_signin=config.global_auth_signin, auth_signin_redirect_param=config.global_auth_signin_redirect_param,
        auth_response_headers=config.global_auth_response_headers,
        auth_request_redirect=config.global_auth_request_redirect, auth_cache_key=config.global_auth_cache_key,
        auth_cache_duration=config.global_auth_cache_duration or DEFAULTS.auth_cache_duration,
        auth_always_set_cookie=config.global_auth_always_set_cookie,
        proxy_connect_timeout=int(config.proxy_connect_timeout), proxy_read_timeout=int(config.proxy_read_timeout))
    layer, problems = auth_layer_of(values, zone=GLOBAL_ZONE)
    return layer, [f"global-auth-url (ConfigMap): {problem.removeprefix('annotation ')}" for problem in problems]


def _refuse(reason: str) -> AuthLayer:
    return AuthLayer(refusal=Refuse(503, reason=reason))


__all__ = ["GLOBAL_ZONE", "AuthLayer", "auth_layer_of", "global_auth_layer"]
