"""ingress-nginx's ConfigMap at the builder level (proxy.routing.global_config): values, defaults, bad values,
unknown keys, precedence against the annotations and against the flags.

Facts are ingress-nginx's: its defaults (internal/ingress/controller/config/config.go NewDefault), its parsing
(template/configmap.go ReadConfig: Go's weakly typed decoding, comma lists trimmed) and the key list of
docs/user-guide/nginx-configuration/configmap.md. The data plane is exercised in
tests/server/test_nginx_configmap.py, live reloads in tests/e2e/test_file_mode_configmap.py and
tests/cluster/test_configmap_watch.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from proxy.routing.build import build
from proxy.routing.global_config import PENDING, GlobalConfig, global_config, parse_config
from proxy.routing.incremental import Builder
from proxy.routing.policies import LEAST_REQUEST
from proxy.settings import Settings

from .objects import backend_world, ingress, path, route_for, rule, snapshot

HOST = "global.bar.com"
PREFIX = "nginx.ingress.kubernetes.io/"
SETTINGS = Settings(configmap="ingress-nginx/controller")
BASE = GlobalConfig.from_settings(SETTINGS)


def parsed(**data: str) -> tuple[GlobalConfig, list[str]]:
    return parse_config({key.replace("_", "-"): value for key, value in data.items()}, base=BASE,
                        where="ingress-nginx/controller")


def world(data: dict[str, Any] | None, *objects: dict[str, Any]) -> Any:
    snap = snapshot(*objects, *backend_world("echo"))
    if data is None:
        return snap
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "controller", "namespace": "ingress-nginx"}, "data": data}
    return replace(snap, controller_config_maps={("ingress-nginx", "controller"): config_map})


def annotated(name: str, host: str = HOST, **annotations: str) -> dict[str, Any]:
    obj = ingress(name, rule(host, path("/", "echo")))
    obj["metadata"]["annotations"] = {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}
    return obj


def test_defaults_are_ingress_nginx_s():
    """config.go NewDefault: the values a ConfigMap without keys gives."""
    config = GlobalConfig()
    assert (config.proxy_connect_timeout, config.proxy_read_timeout, config.proxy_send_timeout) == (5, 60, 60)
    assert (config.hsts, config.hsts_max_age, config.hsts_include_subdomains, config.hsts_preload) == (
        True, 31536000, True, False)
    assert (config.keep_alive, config.keep_alive_requests, config.client_header_timeout,
            config.client_body_timeout) == (75, 1000, 60, 60)
    assert (config.upstream_keepalive_connections, config.upstream_keepalive_timeout) == (320, 60)
    assert (config.limit_req_status_code, config.limit_conn_status_code, config.ssl_redirect) == (503, 503, True)
    assert not config.server_tokens and not config.enable_opentelemetry
    assert config.forwarded_for_header == "X-Forwarded-For" and config.proxy_real_ip_cidr == ("0.0.0.0/0",)
    # Without keys, the flags that do the same job give the values.
    flagged = GlobalConfig.from_settings(Settings(upstream_read_timeout=7, hsts=False))
    assert flagged.proxy_read_timeout == 7 and flagged.hsts is False


def test_values_are_read_as_ingress_nginx_decodes_them():
    """configmap.go ReadConfig: Go's ParseBool ("1", "t", "TRUE"), whole numbers, comma lists trimmed."""
    config, problems = parsed(hsts="0", hsts_preload="TRUE", hsts_max_age="600", proxy_read_timeout="7",
                              keep_alive_requests="10", block_cidrs=" 10.0.0.0/8 ,192.168.1.1",
                              block_user_agents="~*bot, curl/7", proxy_next_upstream="error http_502",
                              load_balance="EWMA", custom_http_errors="404, 503,404", proxy_body_size="8m",
                              server_tokens="t")
    assert [p for p in problems if "not applied yet" not in p] == []
    assert config.hsts is False and config.hsts_preload is True and config.hsts_max_age == 600
    assert config.proxy_read_timeout == 7.0 and config.keep_alive_requests == 10 and config.server_tokens
    assert config.block_cidrs == ("10.0.0.0/8", "192.168.1.1/32")
    assert config.block_user_agents == ("~*bot", "curl/7")
    assert config.proxy_next_upstream == ("error", "http_502") and config.load_balance == "ewma"
    assert config.custom_http_errors == (404, 503) and config.proxy_body_size == 8 << 20
    assert config.hsts_field() == b""
    assert replace(config, hsts=True).hsts_field() == (
        b"Strict-Transport-Security: max-age=600; includeSubDomains; preload\r\n")


@pytest.mark.parametrize(("key", "value"), [
    ("proxy-read-timeout", "abc"), ("proxy-read-timeout", "0"), ("hsts", "yes"), ("hsts-max-age", "-1"),
    ("limit-req-status-code", "200"), ("block-cidrs", "10.0.0.0/33"), ("block-user-agents", "~*(unclosed"),
    ("load-balance", "random"), ("proxy-next-upstream", "sometimes"), ("keep-alive-requests", "many"),
    ("proxy-body-size", "1t")])
def test_a_bad_value_keeps_the_default_with_a_warning_naming_configmap_and_key(key, value):
    config, problems = parsed(**{key.replace("-", "_"): value})
    assert config == replace(BASE, set_keys=frozenset(), invalid_keys=frozenset({key}))
    assert len(problems) == 1 and problems[0].startswith(f"ConfigMap ingress-nginx/controller: key {key}: ")
    assert "kept" in problems[0]


def test_unknown_unread_and_pending_keys_get_one_warning_each():
    """Keys ingress-nginx does not know, keys it knows that pyngress does not read, and keys whose feature is
    not wired (PENDING: parsed and validated now; custom-http-errors needs a global default backend)."""
    config, problems = parsed(no_such_key="1", gzip_level="5", worker_processes="4", custom_http_errors="404",
                              use_proxy_protocol="true", proxy_real_ip_cidr="10.0.0.0/8")
    by_key = {p.split(" key ")[1].split(" ")[0].rstrip(":"): p for p in problems}
    assert set(by_key) == {"no-such-key", "gzip-level", "worker-processes", "custom-http-errors"}
    assert "not an ingress-nginx ConfigMap key" in by_key["no-such-key"]
    assert "not read by pyngress" in by_key["gzip-level"] and "--workers" in by_key["worker-processes"]
    assert "not applied yet" in by_key["custom-http-errors"]
    assert config.use_proxy_protocol is True and config.proxy_real_ip_cidr == ("10.0.0.0/8",)
    assert set(PENDING) == {"custom-http-errors"} and "default backend" in by_key["custom-http-errors"]


def test_flags_are_the_values_the_configmap_does_not_set():
    """The client-address flags, --proxy-protocol and Settings.proxy_body_size give the values of the keys of the
    same names the ConfigMap leaves unset; a key it sets wins (ingress-nginx has only the ConfigMap)."""
    flags = Settings(configmap="ingress-nginx/controller", proxy_protocol=True, use_forwarded_headers=True,
                     forwarded_for_header="CF-Connecting-IP", proxy_real_ip_cidr=("10.0.0.0/8",),
                     compute_full_forwarded_for=True, enable_real_ip=True, proxy_body_size=2048)
    base = GlobalConfig.from_settings(flags)
    assert (base.use_proxy_protocol, base.use_forwarded_headers, base.forwarded_for_header, base.proxy_real_ip_cidr,
            base.compute_full_forwarded_for, base.enable_real_ip, base.proxy_body_size) == (
        True, True, "CF-Connecting-IP", ("10.0.0.0/8",), True, True, 2048)
    config, problems = parse_config({"use-forwarded-headers": "false", "proxy-body-size": "0"}, base=base,
                                    where="ingress-nginx/controller")
    assert not problems and not config.use_forwarded_headers and config.proxy_body_size == 0
    assert config.forwarded_for_header == "CF-Connecting-IP"


def test_missing_configmap_means_defaults_and_a_warning():
    snap = world(None, annotated("plain"))
    config, warnings = global_config(snap, SETTINGS)
    assert config == BASE
    assert [(w.kind, w.namespace, w.name, w.message) for w in warnings] == [
        ("ConfigMap", "ingress-nginx", "controller", "not found (--configmap); defaults used")]
    built = build(snap, SETTINGS)
    assert built.global_config == BASE and any(w.kind == "ConfigMap" for w in built.warnings)
    # Without --configmap nothing is read, and nothing is said.
    assert global_config(snap, Settings()) == (GlobalConfig.from_settings(Settings()), [])


def test_global_forms_are_the_annotation_defaults_and_an_annotation_wins():
    """configmap.md "load-balance", "ssl-redirect", "proxy-next-upstream-tries": the global value applies to every
    Ingress; an Ingress's own annotation (annotations.md) wins over it."""
    data = {"load-balance": "ewma", "proxy-next-upstream-tries": "5", "ssl-redirect": "false"}
    snap = world(data, annotated("plain"), annotated("own", host="own.bar.com", load_balance="round_robin",
                                                     proxy_next_upstream_tries="2"))
    config = build(snap, SETTINGS)
    again = Builder().build(snap, SETTINGS)
    assert (again.checksum, again.warnings) == (config.checksum, config.warnings)
    plain = route_for(config, HOST, "/")
    own = route_for(config, "own.bar.com", "/")
    assert plain is not None and own is not None
    plain_policy = config.clusters[plain.cluster].policy
    own_policy = config.clusters[own.cluster].policy
    assert plain_policy is not None and plain_policy.load_balancer.kind == LEAST_REQUEST
    assert own_policy is None or own_policy.load_balancer.kind != LEAST_REQUEST
    assert plain.policy is not None and plain.policy.retry is not None and plain.policy.retry.num_retries == 4
    assert own.policy is not None and own.policy.retry is not None and own.policy.retry.num_retries == 1


def test_a_bad_global_whitelist_fails_closed_except_where_an_ingress_has_its_own():
    """Security fails closed (annotations.md "Whitelist source range", ingress-nginx's denied location 503):
    a global list that cannot be read never leaves the Ingresses it covers open."""
    snap = world({"whitelist-source-range": "10.0.0.0/8, 300.1.1.1"}, annotated("plain"),
                 annotated("own", host="own.bar.com", whitelist_source_range="10.1.0.0/16"))
    config = build(snap, SETTINGS)
    plain = route_for(config, HOST, "/")
    own = route_for(config, "own.bar.com", "/")
    assert plain is not None and own is not None
    assert [type(f).__name__ for f in plain.filters.request] == ["Refuse"]
    assert plain.filters.request[0].status == 503
    assert [type(f).__name__ for f in own.filters.request] == ["SourceRange"]
    assert any(w.kind == "ConfigMap" and "fail closed" in w.message for w in config.warnings)
    again = Builder().build(snap, SETTINGS)
    assert (again.checksum, again.warnings) == (config.checksum, config.warnings)


def test_a_configmap_change_makes_a_new_config_and_the_incremental_builder_follows():
    builder = Builder()
    first = builder.build(world({"hsts": "true"}, annotated("plain")), SETTINGS)
    second = builder.build(world({"hsts": "false"}, annotated("plain")), SETTINGS)
    assert first.checksum != second.checksum
    assert second.global_config is not None and second.global_config.hsts is False
    fresh = build(world({"hsts": "false"}, annotated("plain")), SETTINGS)
    assert fresh.checksum == second.checksum
    # A per-Ingress value that depends on the ConfigMap follows it (the limit's status code).
    limited = annotated("plain", limit_rps="5")
    before = builder.build(world({}, limited), SETTINGS)
    after = builder.build(world({"limit-req-status-code": "429"}, limited), SETTINGS)
    assert route_for(before, HOST, "/").policy.client_limit.rps.status == 503
    assert route_for(after, HOST, "/").policy.client_limit.rps.status == 429


def test_custom_http_errors_apply_with_a_default_backend_service():
    """configmap.md "custom-http-errors" needs ingress-nginx's default backend (--default-backend-service): with
    one, no "not applied yet" warning, and its cluster key is the Service's first port (as default-backend's)."""
    base = GlobalConfig.from_settings(Settings(default_backend_service="ingress-nginx/errors"))
    config, problems = parse_config({"custom-http-errors": "404,503"}, base=base, where="ns/name")
    assert problems == [] and config.custom_http_errors == (404, 503)
    assert config.default_backend == "ingress-nginx/errors:"
