"""The global configuration: ingress-nginx's ConfigMap (`--configmap NAMESPACE/NAME`), parsed and validated.

`global_config(snapshot, settings)` reads the ConfigMap the settings name (the cache keeps it, whole, under
`Snapshot.controller_config_maps`) into one frozen `GlobalConfig`, an input of the build like the snapshot:
a change makes a new Config, swapped in like any other (ingress-nginx reloads nginx; we swap a reference,
so no connection drops). Facts are ingress-nginx's (internal/ingress/controller/config, template/configmap.go):

- every key has ingress-nginx's default; where a pyngress flag does the same job (`--upstream-read-timeout`
  for `proxy-read-timeout`, `--hsts*`, ...), the flag sets the value the ConfigMap did not: ingress-nginx has
  no flag for any key read here, so a key the ConfigMap sets wins over the flag;
- booleans are Go's ParseBool ("true", "1", "t", "false", "0", "f", any case), numbers whole decimals, lists
  comma-separated (blanks trimmed); a bad value keeps the default, with a warning naming the ConfigMap and key;
- the global forms of `ssl-redirect`, `use-port-in-redirects`, `proxy-next-upstream*`, `load-balance` and
  `whitelist-source-range` are
  the defaults of the per-Ingress annotations of the same name (`annotation_defaults`): an annotation wins;
- a key ingress-nginx knows that pyngress does not read, and a key ingress-nginx does not know, get one
  warning each; a key whose feature needs what is not there (custom-http-errors without
  --default-backend-service) is parsed and validated into its field and listed in `PENDING` ("not applied yet"
  warning, with the reason);
- the client-address keys, `proxy-body-size` and `use-proxy-protocol` default to their flags / settings
  (`--use-forwarded-headers`..., `Settings.proxy_body_size`, `--proxy-protocol`); the server applies them at
  each swap, except `use-proxy-protocol`, read once when the listeners start (proxy/server.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from proxy.objects import Key, Snapshot, Warning
from proxy.references import secret_key
from proxy.routing.access import parse_networks
from proxy.routing.ingress.annotations import (
    IngressAnnotations,
    auth_cache_duration,
    auth_cache_key,
    auth_method,
    auth_request_redirect,
    auth_response_headers,
    auth_signin,
    auth_signin_redirect_param,
    auth_url,
)
from proxy.routing.ingress.annotations import load_balance as load_balance_annotation
from proxy.routing.ingress.annotations import proxy_next_upstream as next_upstream_annotation
from proxy.routing.ingress.annotations.values import Invalid, configmap_reference, integer, not_negative, option
from proxy.routing.ingress.configmap_keys import KEYS
from proxy.settings import Settings

KIND = "ConfigMap"
# ingress-nginx's default no-auth-locations: ACME HTTP-01 challenges pass without authentication.
NO_AUTH_LOCATIONS = ("/.well-known/acme-challenge",)


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    """The controller-wide settings of ingress-nginx's ConfigMap; every value typed, valid, and defaulted."""

    # Timeouts to the pods, whole seconds (proxy_connect_timeout, proxy_read_timeout, proxy_send_timeout).
    proxy_connect_timeout: float = 5.0
    proxy_read_timeout: float = 60.0
    proxy_send_timeout: float = 60.0
    # The global forms of the annotations of the same name (annotation_defaults); () / -1 / "": not set.
    proxy_next_upstream: tuple[str, ...] = ()
    proxy_next_upstream_tries: int = -1
    proxy_next_upstream_timeout: int = -1
    load_balance: str = ""
    whitelist_source_range: tuple[str, ...] = ()
    ssl_redirect: bool = True
    # The status of the HTTPS and from-to-www redirects (nginx.tmpl, lua_ingress.lua): 301, 302, 307 or 308.
    http_redirect_code: int = 308
    # The default of the use-port-in-redirects annotation: the HTTPS redirect writes `https_redirect_port`.
    use_port_in_redirects: bool = False
    # The port it writes (not a ConfigMap key; lua_ingress.lua's listen_ports.https): --publish-https-port, else
    # --https-port.
    https_redirect_port: int = 443
    # Strict-Transport-Security on answers over TLS.
    hsts: bool = True
    hsts_max_age: int = 31536000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    # The answers over the per-client limits (limit-rps/-rpm, limit-connections).
    limit_req_status_code: int = 503
    limit_conn_status_code: int = 503
    # Refused with 403 before routing: client networks, and User-Agents (exact, or `~`/`~*` regexes).
    block_cidrs: tuple[str, ...] = ()
    block_user_agents: tuple[str, ...] = ()
    # Client side (keepalive_timeout, keepalive_requests, client_header_timeout, client_body_timeout).
    keep_alive: float = 75.0
    keep_alive_requests: int = 1000
    client_header_timeout: float = 60.0
    client_body_timeout: float = 60.0
    # Idle connections kept per pod, and how long one may idle.
    upstream_keepalive_connections: int = 320
    upstream_keepalive_timeout: float = 60.0
    # Server header: false (ingress-nginx's default) sends none, the pods' included; true sends ours.
    server_tokens: bool = False
    # Trace routes without an enable-opentelemetry annotation (with --otlp-endpoint).
    enable_opentelemetry: bool = False
    # PROXY protocol on the listeners: read when they start (a later change needs a restart).
    use_proxy_protocol: bool = False
    # What a proxy in front may say about the client (proxy/http/forwarded.py ForwardedTrust).
    use_forwarded_headers: bool = False
    forwarded_for_header: str = "X-Forwarded-For"
    compute_full_forwarded_for: bool = False
    proxy_real_ip_cidr: tuple[str, ...] = ("0.0.0.0/0",)
    enable_real_ip: bool = False
    # Largest request body of an Ingress route without its own proxy-body-size (0: no limit).
    proxy_body_size: int = 1024 * 1024  # bytes ("1m")
    # Statuses answered by the default backend (--default-backend-service) on Ingress routes without their own
    # custom-http-errors; without one, parsed only (see PENDING).
    custom_http_errors: tuple[int, ...] = ()
    # Access-log the requests the default server sends to --default-backend-service (controller.go: its root
    # location's Logs.Access).
    enable_access_log_for_default_backend: bool = False
    # The cluster key of --default-backend-service ("" none): not a ConfigMap key.
    default_backend: str = ""
    # The default of the proxy-request-buffering annotation ("" not set: streamed).
    proxy_request_buffering: str = ""
    # External authentication of every Ingress without its own auth-url (and not enable-global-auth "false"):
    # the global forms of auth-url and its companions ("" / (): not set).
    global_auth_url: str = ""
    global_auth_method: str = ""
    global_auth_signin: str = ""
    global_auth_signin_redirect_param: str = ""
    global_auth_response_headers: tuple[str, ...] = ()
    global_auth_request_redirect: str = ""
    global_auth_cache_key: str = ""
    global_auth_cache_duration: tuple[str, ...] = ()
    global_auth_always_set_cookie: bool = False
    # Path prefixes whose Ingress paths ask no authentication (auth-url, global auth, basic/digest).
    no_auth_locations: tuple[str, ...] = NO_AUTH_LOCATIONS
    # The header names a custom-headers ConfigMap may set (ingress-nginx denies the Ingress's routes otherwise).
    global_allowed_response_headers: tuple[str, ...] = ()
    # The ConfigMap ("namespace/name", or a name in the --configmap's namespace) whose data are request headers
    # set on every request to the pods of Ingress routes ("" none); its headers, read by global_config() from
    # the snapshot, valid ones only, are `upstream_headers`.
    proxy_set_headers: str = ""
    upstream_headers: tuple[tuple[str, str], ...] = ()
    # The keys the ConfigMap set to a valid value (what the migration report and the annotations look at).
    set_keys: frozenset[str] = field(default=frozenset(), repr=False)
    # Keys whose value was bad (the default kept); a bad whitelist-source-range fails closed (annotation_defaults).
    invalid_keys: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> GlobalConfig:
        """The values before any ConfigMap: ingress-nginx's defaults, or the flags that do the same job."""
        return cls(proxy_connect_timeout=settings.upstream_connect_timeout,
                   proxy_read_timeout=settings.upstream_read_timeout,
                   proxy_send_timeout=settings.upstream_read_timeout,
                   hsts=settings.hsts, hsts_max_age=settings.hsts_max_age,
                   hsts_include_subdomains=settings.hsts_include_subdomains, hsts_preload=settings.hsts_preload,
                   keep_alive=settings.client_keepalive_timeout, client_header_timeout=settings.client_header_timeout,
                   client_body_timeout=settings.client_body_timeout,
                   upstream_keepalive_connections=settings.upstream_keepalive,
                   upstream_keepalive_timeout=settings.upstream_keepalive_timeout,
                   enable_opentelemetry=settings.trace_by_default,
                   keep_alive_requests=settings.keepalive_requests,
                   use_proxy_protocol=settings.proxy_protocol,
                   use_forwarded_headers=settings.use_forwarded_headers,
                   forwarded_for_header=settings.forwarded_for_header,
                   compute_full_forwarded_for=settings.compute_full_forwarded_for,
                   proxy_real_ip_cidr=settings.proxy_real_ip_cidr, enable_real_ip=settings.enable_real_ip,
                   proxy_body_size=settings.proxy_body_size,
                   default_backend=_default_backend(settings.default_backend_service),
                   https_redirect_port=settings.publish_https_port or settings.https_port or 443)

    def digest(self) -> str:
        """A stable digest of every value (folded into the build's checksum: a change makes a new Config)."""
        return hashlib.sha256(f"{self!r}|{sorted(self.set_keys)}|{sorted(self.invalid_keys)}".encode()).hexdigest()

    @property
    def global_auth(self) -> bool:
        """Whether Ingresses without their own auth-url get the global external auth (or its refusal)."""
        return bool(self.global_auth_url) or not self.invalid_keys.isdisjoint(GLOBAL_AUTH_FAIL_CLOSED)

    def hsts_field(self) -> bytes:
        """The Strict-Transport-Security header line HTTPS answers carry (b"" when off)."""
        if not self.hsts:
            return b""
        value = b"max-age=%d" % self.hsts_max_age
        if self.hsts_include_subdomains:
            value += b"; includeSubDomains"
        if self.hsts_preload:
            value += b"; preload"
        return b"Strict-Transport-Security: " + value + b"\r\n"

    def annotation_defaults(self, defaults: IngressAnnotations) -> IngressAnnotations:
        """`defaults` with the global forms this ConfigMap sets (an Ingress's own annotation wins)."""
        changes: dict[str, Any] = {name: getattr(self, name) for name in _ANNOTATION_FIELDS
                                   if _key(name) in self.set_keys}
        if _FAIL_CLOSED & self.invalid_keys:
            # A security setting that cannot be honoured closes the routes of every Ingress without its own.
            changes["invalid"] = defaults.invalid | (_FAIL_CLOSED & self.invalid_keys)
        return replace(defaults, **changes) if changes else defaults


# ------------------------------------------------------------------ value readers (Go's, as ingress-nginx decodes)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_SIZE = re.compile(r"([0-9]{1,15})([kKmMgG]?)")


def go_bool(value: str) -> bool:
    """strconv.ParseBool: 1, t, T, TRUE, true, True (and the false forms)."""
    text = value.strip()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Invalid(f'{value!r:.40} is not a boolean ("true" or "false")')



def seconds(value: str) -> float:
    number = integer(value)
    if number <= 0:
        raise Invalid(f"{value!r:.40} is not a number of seconds above 0")
    return float(number)


def count(value: str) -> int:
    number = integer(value)
    if number <= 0:
        raise Invalid(f"{value!r:.40} is not a number above 0")
    return number


def status_code(value: str) -> int:
    """A status nginx's limit_req_status / limit_conn_status accept: 400 to 599."""
    number = integer(value)
    if not 400 <= number <= 599:
        raise Invalid(f"{value!r:.40} is not a status code between 400 and 599")
    return number


def redirect_code(value: str) -> int:
    """configmap.go: 301, 302, 307 or 308."""
    code = integer(value)
    if code not in (301, 302, 307, 308):
        raise Invalid(f"{value!r} is not 301, 302, 307 or 308")
    return code


def words(value: str) -> tuple[str, ...]:
    """ingress-nginx's splitAndTrimSpace(value, ",")."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def networks(value: str) -> tuple[str, ...]:
    try:
        return parse_networks(value) if value.strip() else ()
    except ValueError as error:
        raise Invalid(str(error)) from None


def user_agents(value: str) -> tuple[str, ...]:
    """nginx map keys: exact strings, or `~regex` (case-sensitive) and `~*regex`; each regex must compile."""
    found = words(value)
    for entry in found:
        if entry.startswith("~"):
            try:
                re.compile(entry[2:] if entry.startswith("~*") else entry[1:])
            except (re.error, OverflowError, RecursionError) as error:
                raise Invalid(f"{entry!r:.60} is not a valid regular expression ({error})") from None
    return found


def http_errors(value: str) -> tuple[int, ...]:
    codes = []
    for entry in words(value):
        number = integer(entry)
        if not 100 <= number <= 599:
            raise Invalid(f"{entry!r:.20} is not an HTTP status code")
        codes.append(number)
    return tuple(sorted(set(codes)))


def body_size(value: str) -> int:
    """nginx's size: bytes, or with k, m, g (0: no limit)."""
    found = _SIZE.fullmatch(value.strip())
    if found is None:
        raise Invalid(f"{value!r:.40} is not a size (bytes, or a number with k, m or g)")
    return int(found[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[found[2].lower()]


def header_name(value: str) -> str:
    text = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", text):
        raise Invalid(f"{value!r:.40} is not a header name")
    return text


def request_buffering(value: str) -> str:
    return option(value, ("on", "off"))


def load_balance(value: str) -> str:
    return option(value, load_balance_annotation.OPTIONS)


# key -> reader; the field is the key with "_" for "-".
READERS: Mapping[str, Callable[[str], Any]] = {
    "proxy-connect-timeout": seconds, "proxy-read-timeout": seconds, "proxy-send-timeout": seconds,
    "proxy-next-upstream": next_upstream_annotation.parse, "proxy-next-upstream-tries": not_negative,
    "proxy-next-upstream-timeout": not_negative, "load-balance": load_balance, "whitelist-source-range": networks,
    "ssl-redirect": go_bool, "http-redirect-code": redirect_code, "use-port-in-redirects": go_bool,
    "hsts": go_bool, "hsts-max-age": not_negative,
    "hsts-include-subdomains": go_bool,
    "hsts-preload": go_bool, "limit-req-status-code": status_code, "limit-conn-status-code": status_code,
    "block-cidrs": networks, "block-user-agents": user_agents, "keep-alive": seconds,
    "keep-alive-requests": count, "client-header-timeout": seconds, "client-body-timeout": seconds,
    "upstream-keepalive-connections": not_negative, "upstream-keepalive-timeout": seconds,
    "server-tokens": go_bool, "enable-opentelemetry": go_bool,
    "use-proxy-protocol": go_bool, "use-forwarded-headers": go_bool, "forwarded-for-header": header_name,
    "compute-full-forwarded-for": go_bool, "proxy-real-ip-cidr": networks, "enable-real-ip": go_bool,
    "custom-http-errors": http_errors, "enable-access-log-for-default-backend": go_bool, "proxy-body-size": body_size,
    "global-allowed-response-headers": words,
    "proxy-request-buffering": request_buffering, "no-auth-locations": words,
    "proxy-set-headers": configmap_reference,
    "global-auth-url": auth_url.parse, "global-auth-method": auth_method.parse, "global-auth-signin": auth_signin.parse,
    "global-auth-signin-redirect-param": auth_signin_redirect_param.parse,
    "global-auth-response-headers": auth_response_headers.parse,
    "global-auth-request-redirect": auth_request_redirect.parse, "global-auth-cache-key": auth_cache_key.parse,
    "global-auth-cache-duration": auth_cache_duration.parse, "global-auth-always-set-cookie": go_bool,
}
# Parsed and validated, not applied without --default-backend-service: custom-http-errors needs a default backend
# (the annotation of the same name also works with default-backend per Ingress).
PENDING: Mapping[str, str] = {
    "custom-http-errors": "it needs a default backend: --default-backend-service (the custom-http-errors annotation "
                          "also works with default-backend per Ingress)",
}
# Read with a difference from ingress-nginx (the migration report shows it).
DIFFERENCES: Mapping[str, str] = {
    "proxy-next-upstream": "attempts go to other pods of the same Service; http_403/http_404/http_429 retried "
                           "like the 5xx ones",
    "load-balance": "ewma is least-request; chash, chashsubset and sticky_* come from upstream-hash-by and "
                    "affinity (round robin otherwise)",
    "server-tokens": "\"true\" sends `Server: pyngress` instead of nginx's version",
    "keep-alive-requests": "counted per client connection over HTTP/1.1",
    "use-proxy-protocol": "read when the listeners start: a later change needs a restart (a warning says so)",
    "global-auth-url": "an invalid value refuses (503) the Ingresses it would protect (ingress-nginx drops the global "
                       "auth)",
    "proxy-request-buffering": "bodies are held in memory up to 8 MiB (the rest streams); unset, pyngress streams",
    "proxy-set-headers": "headers whose value has an nginx variable (`$msec`...) and the proxy's own (Host, "
                         "framing) are left out, with a warning; a bare name is read in the --configmap's namespace",
}
# Keys pyngress serves through a flag rather than the ConfigMap.
FLAG_EQUIVALENTS: Mapping[str, str] = {
    "large-client-header-buffers": "--max-header-bytes",
    "worker-processes": "--workers",
    "otlp-collector-host": "--otlp-endpoint",
    "otlp-collector-port": "--otlp-endpoint",
    "otel-sampler-ratio": "--trace-sample-ratio",
    "opentelemetry-trust-incoming-span": "--trace-trust-incoming",
    "worker-shutdown-timeout": "--shutdown-grace-period",
    "use-http2": "--http2 / --no-http2",
}
_ANNOTATION_FIELDS = ("proxy_next_upstream", "proxy_next_upstream_tries", "proxy_next_upstream_timeout",
                      "load_balance", "whitelist_source_range", "ssl_redirect", "proxy_request_buffering",
                      "use_port_in_redirects")
# Global forms of security annotations: a bad value refuses (503) the routes of Ingresses without their own.
_FAIL_CLOSED = frozenset({"whitelist-source-range"})
# The global external auth's keys whose bad value refuses (503) the Ingresses it would protect (ingress-nginx
# drops the global auth with a warning instead: pyngress never serves them unprotected).
GLOBAL_AUTH_FAIL_CLOSED = ("global-auth-url", "global-auth-method", "global-auth-response-headers",
                           "global-auth-cache-duration", "global-auth-request-redirect",
                           "global-auth-always-set-cookie")
_FIELD_NAMES = frozenset(f.name for f in fields(GlobalConfig))
assert all(key.replace("-", "_") in _FIELD_NAMES for key in READERS) and set(READERS) <= KEYS


def _key(field_name: str) -> str:
    return field_name.replace("_", "-")


def _default_backend(service: str) -> str:
    """The cluster key of --default-backend-service (its first port, as an Ingress's default-backend)."""
    namespace, slash, name = service.partition("/")
    return f"{namespace}/{name}:" if slash and namespace and name else ""


def config_map_key(settings: Settings) -> Key | None:
    """(namespace, name) of the ConfigMap `--configmap` names, None without one."""
    namespace, slash, name = settings.configmap.partition("/")
    return (namespace, name) if slash and namespace and name else None


def parse_config(data: Mapping[str, Any], *, base: GlobalConfig, where: str) -> tuple[GlobalConfig, list[str]]:
    """`base` with the values of a ConfigMap's `data`, and one problem per bad, unread or unknown key.
    `where`: "namespace/name", for the messages."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    invalid: set[str] = set()
    for key in sorted(data, key=str):
        value = data[key]
        reader = READERS.get(key) if isinstance(key, str) else None
        if reader is None:
            if key in KEYS:
                flag = FLAG_EQUIVALENTS.get(key)
                problems.append(f"key {key} is not read by pyngress; ignored"
                                + (f" (the flag {flag} does this)" if flag else ""))
            else:
                problems.append(f"key {key!s:.80} is not an ingress-nginx ConfigMap key; ignored")
            continue
        name = key.replace("-", "_")
        try:
            if not isinstance(value, str):
                raise Invalid(f"must be a string, got {value!r:.60}")
            values[name] = reader(value)
        except Invalid as error:
            invalid.add(key)
            if key == "proxy-real-ip-cidr":
                problems.append(f"key {key}: {error}; no network is trusted with forwarded headers until it is "
                                "fixed (fail closed)")
            elif key in GLOBAL_AUTH_FAIL_CLOSED:
                problems.append(f"key {key}: {error}; every Ingress without its own auth-url (and without "
                                "enable-global-auth \"false\") answers 503 until it is fixed (fail closed)")
            elif key in _FAIL_CLOSED:
                problems.append(f"key {key}: {error}; every Ingress without its own {key} answers 503 until it is "
                                "fixed (fail closed)")
            else:
                problems.append(f"key {key}: {error}; {_shown(getattr(base, name))} kept")
            continue
        if key in PENDING and not (key == "custom-http-errors" and base.default_backend):
            problems.append(f"key {key} is read but not applied yet ({PENDING[key]})")
    config = replace(base, **values, set_keys=frozenset(_key(name) for name in values),
                     invalid_keys=frozenset(invalid))
    return config, [f"ConfigMap {where}: {message}" for message in problems]


def global_config(snapshot: Snapshot, settings: Settings) -> tuple[GlobalConfig, list[Warning]]:
    """The global configuration of a build, and its warnings (kind ConfigMap, naming the ConfigMap)."""
    base = GlobalConfig.from_settings(settings)
    key = config_map_key(settings)
    if key is None:
        return base, []
    obj = snapshot.controller_config_maps.get(key)
    if obj is None:
        return base, [Warning(KIND, key[0], key[1], "not found (--configmap); defaults used")]
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return base, [Warning(KIND, key[0], key[1], "its data is not a mapping; defaults used")]
    config, problems = parse_config(data, base=base, where=f"{key[0]}/{key[1]}")
    prefix = f"ConfigMap {key[0]}/{key[1]}: "
    warnings = [Warning(KIND, key[0], key[1], message.removeprefix(prefix)) for message in problems]
    if config.proxy_set_headers:
        headers, header_problems = upstream_headers(snapshot, config.proxy_set_headers, key[0])
        config = replace(config, upstream_headers=headers)
        warnings.extend(Warning(KIND, key[0], key[1], f"key proxy-set-headers: {message}")
                        for message in header_problems)
    return config, warnings


# Request fields the proxy frames or routes by: a proxy-set-headers ConfigMap may not set them.
_OWN_FIELDS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                         "trailer", "proxy-connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_VALUE = re.compile(r"[\x20-\x7e\x80-\xff\t]*")
_NGINX_VARIABLE = re.compile(r"\$(?:[A-Za-z_]|\{)")


def upstream_headers(snapshot: Snapshot, reference: str, namespace: str) -> tuple[tuple[tuple[str, str], ...],
                                                                                  list[str]]:
    """The headers of the ConfigMap `reference` names (a bare name: in `namespace`, the --configmap's), sorted, and
    one problem per header left out; a missing ConfigMap adds none (ingress-nginx warns and adds none: it is
    not a security feature). ingress-nginx sends each as `proxy_set_header`: the client's field of that name
    is replaced."""
    key = secret_key(reference, namespace)
    if key is None:
        return (), [f"{reference!r:.80} is not namespace/name; no headers added"]
    where = f"ConfigMap {key[0]}/{key[1]}"
    obj = snapshot.config_maps.get(key)
    if obj is None:
        return (), [f"{where} not found; no headers added to upstream requests"]
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return (), [f"{where}: data is not a mapping; no headers added to upstream requests"]
    headers: list[tuple[str, str]] = []
    problems: list[str] = []
    for name, value in sorted(data.items(), key=lambda item: str(item[0])):
        if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            problems.append(f"{where}: {name!r:.60} is not a header name; left out")
        elif name.lower() in _OWN_FIELDS:
            problems.append(f"{where}: header {name} is the proxy's own (framing, Host: see upstream-vhost); "
                            "left out")
        elif not isinstance(value, str) or _VALUE.fullmatch(value) is None:
            problems.append(f"{where}: the value of header {name} is not one line of text; left out")
        elif _NGINX_VARIABLE.search(value) is not None:
            problems.append(f"{where}: the value of header {name} has an nginx variable, which pyngress does not "
                            "render; left out")
        else:
            headers.append((name, value.strip()))
    return tuple(headers), problems


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f'the default "{str(value).lower()}"'
    if value == () or value == "":
        return "nothing"
    if isinstance(value, float) and value.is_integer():
        return f"the default {int(value)}"
    if isinstance(value, tuple):
        return f"the default {','.join(map(str, value))!r}"
    return f"the default {value!r}"


def with_config(checksum: str, config: GlobalConfig, settings: Settings) -> str:
    """The build's checksum with the global configuration folded in (as it is, without --configmap)."""
    if not settings.configmap:
        return checksum
    return hashlib.sha256(f"{checksum}|{config.digest()}".encode()).hexdigest()


__all__ = ["DIFFERENCES", "FLAG_EQUIVALENTS", "KIND", "PENDING", "READERS", "GlobalConfig", "config_map_key",
           "global_config", "parse_config", "with_config"]
