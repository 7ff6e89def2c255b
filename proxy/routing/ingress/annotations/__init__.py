"""Ingress annotations, ingress-nginx style: one small parser per annotation, one registry.

Every annotation is read under both prefixes, `pyngress.dev/` first (ours wins), then
`nginx.ingress.kubernetes.io/` (so manifests written for ingress-nginx keep working). A parser
takes the value as written and returns a typed value or raises `Invalid`; the value then keeps
its default (or, where the module says so in `DISABLED`, the feature is off for that Ingress),
its name is listed in `IngressAnnotations.invalid`, and the Ingress gets a warning naming the
annotation. Annotations under those prefixes that no parser knows are reported too: a setting that
silently does nothing is worse than a warning. The snippet annotations (raw nginx configuration)
are refused on purpose, each with its own warning; the Ingress is served without them.

Adding an annotation: a module here with `NAME`, `DEFAULT` and `parse(value)` (and `DISABLED` when
an invalid value turns the feature off), a field of the same name in `IngressAnnotations`, and one
line in `REGISTRY`. The translator (routing.ingress.nginx) reads the field; the build's checksum
covers whatever the annotation changes in the routes it compiles to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from proxy.routing.ingress.annotations import (
    affinity,
    affinity_canary_behavior,
    affinity_mode,
    app_root,
    auth_always_set_cookie,
    auth_cache_duration,
    auth_cache_key,
    auth_keepalive,
    auth_keepalive_requests,
    auth_keepalive_share_vars,
    auth_keepalive_timeout,
    auth_method,
    auth_proxy_set_headers,
    auth_realm,
    auth_request_redirect,
    auth_response_headers,
    auth_secret,
    auth_secret_type,
    auth_signin,
    auth_signin_redirect_param,
    auth_tls_error_page,
    auth_tls_match_cn,
    auth_tls_pass_certificate_to_upstream,
    auth_tls_secret,
    auth_tls_verify_client,
    auth_tls_verify_depth,
    auth_type,
    auth_url,
    backend_protocol,
    canary,
    canary_by_cookie,
    canary_by_header,
    canary_by_header_pattern,
    canary_by_header_value,
    canary_weight,
    canary_weight_total,
    cors_allow_credentials,
    cors_allow_headers,
    cors_allow_methods,
    cors_allow_origin,
    cors_expose_headers,
    cors_max_age,
    custom_headers,
    custom_http_errors,
    default_backend,
    denylist_source_range,
    enable_access_log,
    enable_cors,
    enable_global_auth,
    enable_opentelemetry,
    force_ssl_redirect,
    from_to_www_redirect,
    limit_burst_multiplier,
    limit_connections,
    limit_rpm,
    limit_rps,
    limit_whitelist,
    load_balance,
    mirror_host,
    mirror_request_body,
    mirror_target,
    permanent_redirect,
    permanent_redirect_code,
    preserve_trailing_slash,
    proxy_body_size,
    proxy_connect_timeout,
    proxy_http_version,
    proxy_next_upstream,
    proxy_next_upstream_timeout,
    proxy_next_upstream_tries,
    proxy_read_timeout,
    proxy_request_buffering,
    proxy_send_timeout,
    proxy_ssl_name,
    proxy_ssl_secret,
    proxy_ssl_server_name,
    proxy_ssl_verify,
    rewrite_target,
    server_alias,
    service_upstream,
    session_cookie_change_on_failure,
    session_cookie_domain,
    session_cookie_expires,
    session_cookie_max_age,
    session_cookie_name,
    session_cookie_path,
    session_cookie_samesite,
    session_cookie_secure,
    ssl_passthrough,
    ssl_redirect,
    temporal_redirect,
    temporal_redirect_code,
    upstream_hash_by,
    upstream_vhost,
    use_port_in_redirects,
    use_regex,
    whitelist_source_range,
    x_forwarded_prefix,
)
from proxy.routing.ingress.annotations.values import Invalid

PREFIXES = ("pyngress.dev/", "nginx.ingress.kubernetes.io/")

# The traffic annotations (routing.ingress.nginx_traffic compiles them into a policy layer).
TRAFFIC: tuple[ModuleType, ...] = (
    proxy_connect_timeout,
    proxy_read_timeout,
    proxy_send_timeout,
    proxy_next_upstream,
    proxy_next_upstream_tries,
    proxy_next_upstream_timeout,
    load_balance,
    upstream_hash_by,
    affinity,
    affinity_mode,
    session_cookie_name,
    session_cookie_path,
    session_cookie_max_age,
    session_cookie_expires,
    session_cookie_samesite,
    session_cookie_secure,
    session_cookie_domain,
    session_cookie_change_on_failure,
    backend_protocol,
    proxy_ssl_secret,
    proxy_ssl_verify,
    proxy_ssl_name,
    proxy_ssl_server_name,
    service_upstream,
)

# External authentication (routing.ingress.auth_url compiles them into routing.external_auth.ExternalAuth).
EXTERNAL_AUTH: tuple[ModuleType, ...] = (
    auth_url,
    auth_method,
    auth_signin,
    auth_signin_redirect_param,
    auth_response_headers,
    auth_request_redirect,
    auth_cache_key,
    auth_cache_duration,
    auth_always_set_cookie,
    auth_keepalive,
    auth_keepalive_requests,
    auth_keepalive_timeout,
    auth_keepalive_share_vars,
    auth_proxy_set_headers,
    enable_global_auth,
)

# The annotations honoured, each a module with NAME, DEFAULT and parse(value).
REGISTRY: tuple[ModuleType, ...] = (
    ssl_redirect,
    ssl_passthrough,
    force_ssl_redirect,
    rewrite_target,
    use_regex,
    app_root,
    permanent_redirect,
    permanent_redirect_code,
    temporal_redirect,
    temporal_redirect_code,
    x_forwarded_prefix,
    preserve_trailing_slash,
    use_port_in_redirects,
    canary,
    canary_by_header,
    canary_by_header_value,
    canary_by_header_pattern,
    canary_by_cookie,
    canary_weight,
    canary_weight_total,
    affinity_canary_behavior,
    whitelist_source_range,
    denylist_source_range,
    limit_rps,
    limit_rpm,
    limit_connections,
    limit_burst_multiplier,
    limit_whitelist,
    enable_cors,
    cors_allow_origin,
    cors_allow_methods,
    cors_allow_headers,
    cors_expose_headers,
    cors_allow_credentials,
    cors_max_age,
    auth_type,
    auth_secret,
    auth_secret_type,
    auth_realm,
    enable_opentelemetry,
    proxy_body_size,
    default_backend,
    custom_http_errors,
    custom_headers,
    server_alias,
    from_to_www_redirect,
    upstream_vhost,
    enable_access_log,
    auth_tls_secret,
    auth_tls_verify_client,
    auth_tls_verify_depth,
    auth_tls_error_page,
    auth_tls_pass_certificate_to_upstream,
    auth_tls_match_cn,
    mirror_target,
    mirror_request_body,
    mirror_host,
    proxy_http_version,
    proxy_request_buffering,
    *TRAFFIC,
    *EXTERNAL_AUTH,
)

# Raw nginx configuration: refused on purpose (ingress-nginx's worst security hole; it turned them off by
# default in 2025). Each is warned about by name; the rest of the Ingress is served.
REFUSED = frozenset({"configuration-snippet", "server-snippet", "auth-snippet", "stream-snippet",
                     "modsecurity-snippet"})


@dataclass(frozen=True, slots=True)
class IngressAnnotations:
    """The typed values of one Ingress's annotations (defaults where absent or invalid)."""

    ssl_redirect: bool = ssl_redirect.DEFAULT
    force_ssl_redirect: bool = force_ssl_redirect.DEFAULT
    ssl_passthrough: bool = ssl_passthrough.DEFAULT
    rewrite_target: str = rewrite_target.DEFAULT
    use_regex: bool = use_regex.DEFAULT
    app_root: str = app_root.DEFAULT
    permanent_redirect: str = permanent_redirect.DEFAULT
    permanent_redirect_code: int = permanent_redirect_code.DEFAULT
    temporal_redirect: str = temporal_redirect.DEFAULT
    temporal_redirect_code: int = temporal_redirect_code.DEFAULT
    x_forwarded_prefix: str = x_forwarded_prefix.DEFAULT
    preserve_trailing_slash: bool = preserve_trailing_slash.DEFAULT
    use_port_in_redirects: bool = use_port_in_redirects.DEFAULT
    canary: bool = canary.DEFAULT
    canary_by_header: str = canary_by_header.DEFAULT
    canary_by_header_value: str = canary_by_header_value.DEFAULT
    canary_by_header_pattern: str = canary_by_header_pattern.DEFAULT
    canary_by_cookie: str = canary_by_cookie.DEFAULT
    canary_weight: int = canary_weight.DEFAULT
    canary_weight_total: int = canary_weight_total.DEFAULT
    affinity_canary_behavior: str = affinity_canary_behavior.DEFAULT
    whitelist_source_range: tuple[str, ...] = whitelist_source_range.DEFAULT
    denylist_source_range: tuple[str, ...] = denylist_source_range.DEFAULT
    limit_rps: int = limit_rps.DEFAULT
    limit_rpm: int = limit_rpm.DEFAULT
    limit_connections: int = limit_connections.DEFAULT
    limit_burst_multiplier: int = limit_burst_multiplier.DEFAULT
    limit_whitelist: tuple[str, ...] = limit_whitelist.DEFAULT
    enable_cors: bool = enable_cors.DEFAULT
    cors_allow_origin: tuple[str, ...] = cors_allow_origin.DEFAULT
    cors_allow_methods: str = cors_allow_methods.DEFAULT
    cors_allow_headers: str = cors_allow_headers.DEFAULT
    cors_expose_headers: str = cors_expose_headers.DEFAULT
    cors_allow_credentials: bool = cors_allow_credentials.DEFAULT
    cors_max_age: int = cors_max_age.DEFAULT
    auth_type: str = auth_type.DEFAULT
    auth_secret: str = auth_secret.DEFAULT
    auth_secret_type: str = auth_secret_type.DEFAULT
    auth_realm: str = auth_realm.DEFAULT
    enable_opentelemetry: bool | None = enable_opentelemetry.DEFAULT
    proxy_body_size: int = proxy_body_size.DEFAULT
    default_backend: str = default_backend.DEFAULT
    custom_http_errors: tuple[int, ...] = custom_http_errors.DEFAULT
    custom_headers: str = custom_headers.DEFAULT
    server_alias: tuple[str, ...] = server_alias.DEFAULT
    from_to_www_redirect: bool = from_to_www_redirect.DEFAULT
    upstream_vhost: str = upstream_vhost.DEFAULT
    enable_access_log: bool = enable_access_log.DEFAULT
    auth_tls_secret: str = auth_tls_secret.DEFAULT
    auth_tls_verify_client: str = auth_tls_verify_client.DEFAULT
    auth_tls_verify_depth: int = auth_tls_verify_depth.DEFAULT
    auth_tls_error_page: str = auth_tls_error_page.DEFAULT
    auth_tls_pass_certificate_to_upstream: bool = auth_tls_pass_certificate_to_upstream.DEFAULT
    auth_tls_match_cn: str = auth_tls_match_cn.DEFAULT
    proxy_connect_timeout: int = proxy_connect_timeout.DEFAULT
    proxy_read_timeout: int = proxy_read_timeout.DEFAULT
    proxy_send_timeout: int = proxy_send_timeout.DEFAULT
    proxy_next_upstream: tuple[str, ...] = proxy_next_upstream.DEFAULT
    proxy_next_upstream_tries: int = proxy_next_upstream_tries.DEFAULT
    proxy_next_upstream_timeout: int = proxy_next_upstream_timeout.DEFAULT
    load_balance: str = load_balance.DEFAULT
    upstream_hash_by: str = upstream_hash_by.DEFAULT
    affinity: str = affinity.DEFAULT
    affinity_mode: str = affinity_mode.DEFAULT
    session_cookie_name: str = session_cookie_name.DEFAULT
    session_cookie_path: str = session_cookie_path.DEFAULT
    session_cookie_max_age: int = session_cookie_max_age.DEFAULT
    session_cookie_expires: int = session_cookie_expires.DEFAULT
    session_cookie_samesite: str = session_cookie_samesite.DEFAULT
    session_cookie_secure: bool = session_cookie_secure.DEFAULT
    session_cookie_domain: str = session_cookie_domain.DEFAULT
    session_cookie_change_on_failure: bool = session_cookie_change_on_failure.DEFAULT
    backend_protocol: str = backend_protocol.DEFAULT
    proxy_ssl_secret: str = proxy_ssl_secret.DEFAULT
    proxy_ssl_verify: bool = proxy_ssl_verify.DEFAULT
    proxy_ssl_name: str = proxy_ssl_name.DEFAULT
    proxy_ssl_server_name: bool = proxy_ssl_server_name.DEFAULT
    auth_url: str = auth_url.DEFAULT
    auth_method: str = auth_method.DEFAULT
    auth_signin: str = auth_signin.DEFAULT
    auth_signin_redirect_param: str = auth_signin_redirect_param.DEFAULT
    auth_response_headers: tuple[str, ...] = auth_response_headers.DEFAULT
    auth_request_redirect: str = auth_request_redirect.DEFAULT
    auth_cache_key: str = auth_cache_key.DEFAULT
    auth_cache_duration: tuple[str, ...] = auth_cache_duration.DEFAULT
    auth_always_set_cookie: bool = auth_always_set_cookie.DEFAULT
    auth_keepalive: int = auth_keepalive.DEFAULT
    auth_keepalive_requests: int = auth_keepalive_requests.DEFAULT
    auth_keepalive_timeout: int = auth_keepalive_timeout.DEFAULT
    auth_keepalive_share_vars: bool = auth_keepalive_share_vars.DEFAULT
    auth_proxy_set_headers: str = auth_proxy_set_headers.DEFAULT
    enable_global_auth: bool = enable_global_auth.DEFAULT
    service_upstream: bool = service_upstream.DEFAULT
    mirror_target: str = mirror_target.DEFAULT
    mirror_request_body: bool = mirror_request_body.DEFAULT
    mirror_host: str = mirror_host.DEFAULT
    proxy_http_version: str = proxy_http_version.DEFAULT
    proxy_request_buffering: str = proxy_request_buffering.DEFAULT
    # Names of the annotations whose value was invalid (a feature may be off because of one).
    invalid: frozenset[str] = frozenset()
    # Names of the annotations the Ingress itself sets, valid or not (not the ConfigMap's global forms).
    given: frozenset[str] = frozenset()


DEFAULTS = IngressAnnotations()
_FIELD = {module.NAME: module.NAME.replace("-", "_") for module in REGISTRY}
# Every spelling of each annotation (a module's SPELLINGS: ingress-nginx's AnnotationAliases, such as
# `allowlist-source-range` for `whitelist-source-range`), with its rank: under one prefix, the spelling
# listed first is read first and wins. NAME is the spelling of docs/ingress-nginx.md and of the field.
_SPELLINGS = {module.NAME: getattr(module, "SPELLINGS", (module.NAME,)) for module in REGISTRY}
_BY_NAME = {name: module for module in REGISTRY for name in _SPELLINGS[module.NAME]}
_RANK = {name: rank for spellings in _SPELLINGS.values() for rank, name in enumerate(spellings)}


def annotations_of(ingress: Mapping[str, Any]) -> Mapping[str, Any]:
    """The annotations mapping of an object ({} when absent or malformed)."""
    meta = ingress.get("metadata")
    # `type(...) is dict` first: raw objects are dicts, and the ABC check costs ten times more.
    found = meta.get("annotations") if type(meta) is dict or isinstance(meta, Mapping) else None
    return found if type(found) is dict or isinstance(found, Mapping) else {}


def parse_annotations(annotations: Mapping[str, Any], *,
                      defaults: IngressAnnotations | None = None) -> tuple[IngressAnnotations, list[str]]:
    """The typed values and, as messages, every problem (invalid value, unknown annotation). `defaults`: the
    values of annotations not set (DEFAULTS, or the global forms of ingress-nginx's ConfigMap over them)."""
    if defaults is None:
        defaults = DEFAULTS
    if not annotations:
        return defaults, []
    values: dict[str, Any] = {}
    problems: list[str] = []
    decided: set[str] = set()
    read: set[tuple[str, str]] = set()
    invalid: set[str] = set(defaults.invalid)  # a global form that was bad (see routing.global_config)
    given: set[str] = set()
    for key in sorted(annotations, key=_our_first):
        name = _short_name(key)
        if name is None:
            continue
        module = _BY_NAME.get(name)
        if module is None:
            if name in REFUSED:
                problems.append(f"annotation {key} is refused: snippets of raw nginx configuration are not "
                                "supported, on purpose; the Ingress is served without it")
            else:
                problems.append(f"annotation {key} is not supported; ignored")
            continue
        name = module.NAME
        if name in decided:
            continue  # the pyngress.dev/ spelling (or the preferred one of its SPELLINGS) was read first and wins
        prefix = key[:len(key) - len(_short_name(key) or "")]
        if (prefix, name) in read:
            continue  # another spelling under this prefix came first: it alone counts, valid or not (ingress-nginx)
        read.add((prefix, name))
        given.add(name)
        value = annotations[key]
        try:
            if not isinstance(value, str):
                raise Invalid(f"must be a string, got {value!r:.60}")
            values[_FIELD[name]] = module.parse(value)
            decided.add(name)
        except Invalid as error:
            disabled = getattr(module, "DISABLED", None)
            problems.append(f"annotation {key}: {error}; "
                            + (disabled if disabled else f"{_default_text(module.DEFAULT)} used"))
            invalid.add(name)
    invalid -= decided  # a valid pyngress.dev/ spelling (or the Ingress's own value) decided it
    if invalid != defaults.invalid:
        values["invalid"] = frozenset(invalid)
    if given:
        values["given"] = frozenset(given)
    return (replace(defaults, **values) if values else defaults), problems


def _short_name(key: Any) -> str | None:
    if isinstance(key, str):
        for prefix in PREFIXES:
            if key.startswith(prefix):
                return key[len(prefix):]
    return None


def _our_first(key: Any) -> tuple[int, int, str]:
    text = key if isinstance(key, str) else ""
    return (0 if text.startswith(PREFIXES[0]) else 1, _RANK.get(_short_name(key) or "", 0), text)


def _default_text(value: Any) -> str:
    if value is None:
        return "the process's default"
    if value == "" or value == ():
        return "nothing"
    if isinstance(value, bool):
        return f'the default "{str(value).lower()}"'
    return f"the default {value!r}"


__all__ = ["DEFAULTS", "EXTERNAL_AUTH", "PREFIXES", "REFUSED", "REGISTRY", "TRAFFIC", "IngressAnnotations", "Invalid",
           "annotations_of", "parse_annotations"]
