"""ingress-nginx's ConfigMap (proxy.routing.global_config) end to end: objects and a ConfigMap → the real builder
→ the real proxy → pods; a new ConfigMap is a new Config swapped into the running server (no restart, open
connections kept). Each test names the section of ingress-nginx's docs/user-guide/nginx-configuration/configmap.md
(or the e2e test under test/e2e/settings/) whose behaviour it reproduces."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.global_config import GlobalConfig, parse_config
from proxy.routing.model import BODY_LIMIT_DEFAULT, BODY_LIMIT_GLOBAL, Config
from proxy.settings import Settings
from server_harness import (
    Pod,
    Proxy,
    Rule,
    cluster,
    connect,
    encode_request,
    logged_lines,
    make_config,
    read_response,
    request,
)
from test_nginx_annotations import ingress
from test_proxy_protocol import ask, echoed, v1
from test_real_ip import forwarded

HOST = "config.foo.com"
KEY = ("ingress-nginx", "controller")


def serve(proxy: Any, pods: list[Pod], data: dict[str, str] | None, *ingresses: dict[str, Any],
          config_maps: dict[Any, Any] | None = None) -> Config:
    """Build from the Ingresses, a Service + EndpointSlice per pod and the controller ConfigMap (and the
    ConfigMaps Ingresses name, by (namespace, name)), and publish."""
    services = {("default", pod.name): {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": pod.name, "namespace": "default"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": pod.port}]}} for pod in pods}
    slices = {("default", pod.name): {f"{pod.name}-1": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{pod.name}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": pod.name}},
        "endpoints": [{"addresses": [pod.host], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": pod.port, "protocol": "TCP"}]}} for pod in pods}
    maps = {} if data is None else {KEY: {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": KEY[1], "namespace": KEY[0]}, "data": data}}
    snap = Snapshot(ingresses={("default", obj["metadata"]["name"]): obj for obj in ingresses},
                    services=services, endpoint_slices=slices, controller_config_maps=maps,
                    config_maps=config_maps or {})
    config = build(snap, proxy.settings)
    proxy.publish_config(config, list(config.clusters.values()))
    return config


async def burst(port: int, count: int = 12) -> list[int]:
    """`count` requests on one keep-alive connection, as fast as answers come."""
    reader, writer = await connect(port, source="127.0.1.8")
    try:
        statuses = []
        for _ in range(count):
            writer.write(encode_request("/", host=HOST))
            statuses.append((await read_response(reader)).status)
        return statuses
    finally:
        writer.close()


async def test_limit_req_status_code_changes_the_answer_live(make_proxy, make_pods):
    """configmap.md "limit-req-status-code" (default 503) and annotations.md "Rate Limiting": the same limit,
    over it 503, then 429 once the ConfigMap says so, on the running server."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    limited = ingress("rps", HOST, ("/", "Prefix", "echo"), limit_rps="1", limit_burst_multiplier="1")
    serve(proxy, [echo], {}, limited)
    assert set(await burst(proxy.port)) == {200, 503}
    config = serve(proxy, [echo], {"limit-req-status-code": "429", "limit-conn-status-code": "430"}, limited)
    assert config.global_config is not None and config.global_config.limit_req_status_code == 429
    assert set(await burst(proxy.port)) == {200, 429}
    # A bad value keeps the default, with a warning naming the ConfigMap and the key.
    config = serve(proxy, [echo], {"limit-req-status-code": "abc"}, limited)
    assert set(await burst(proxy.port)) == {200, 503}
    assert [(w.kind, w.namespace, w.name) for w in config.warnings if "limit-req-status-code" in w.message] == [
        ("ConfigMap", *KEY)]


async def test_block_cidrs_and_user_agents_answer_403(make_proxy, make_pods):
    """configmap.md "block-cidrs" (nginx `deny` at the http level) and "block-user-agents" (a map of exact strings
    and ~ / ~* regexes, `return 403` in every server), before any routing: a host no Ingress names too."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    serve(proxy, [echo], {"block-cidrs": "127.0.1.64/30, 127.0.2.9", "block-user-agents": "EvilBot/1.0, ~*crawler"},
          ingress("open", HOST, ("/", "Prefix", "echo")))

    async def status(source: str = "127.0.1.5", agent: str = "curl/8", host: str = HOST) -> int:
        return (await request(proxy.port, "/", host=host, source=source, headers=[("User-Agent", agent)])).status

    assert await status() == 200
    assert await status(source="127.0.1.66") == 403 and await status(source="127.0.2.9") == 403
    assert await status(source="127.0.1.66", host="nowhere.test") == 403  # before routing
    assert await status(agent="evilbot/1.0") == 403  # map strings compare without case
    assert await status(agent="Mozilla (SomeCrawler)") == 403
    assert await status(agent="EvilBot/1.01") == 200
    assert echo.requests == 2
    serve(proxy, [echo], {}, ingress("open", HOST, ("/", "Prefix", "echo")))  # the ConfigMap edited: no blocks
    assert await status(source="127.0.1.66") == 200


async def test_keep_alive_requests_closes_after_the_last_one(make_proxy, make_pods):
    """configmap.md "keep-alive-requests" (nginx keepalive_requests): the Nth request of a connection is
    answered with Connection: close."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    serve(proxy, [echo], {"keep-alive-requests": "2"}, ingress("open", HOST, ("/", "Prefix", "echo")))
    reader, writer = await connect(proxy.port)
    try:
        writer.write(encode_request("/", host=HOST))
        first = await read_response(reader)
        writer.write(encode_request("/", host=HOST))
        second = await read_response(reader)
    finally:
        writer.close()
    assert first.status == second.status == 200
    assert first.header("connection") is None and second.header("connection") == "close"


async def test_server_tokens_and_global_whitelist(make_proxy, make_pods):
    """configmap.md "server-tokens" (off: `more_clear_headers Server`, the pods' too; on: the proxy's own) and
    "whitelist-source-range" (global; an Ingress's own annotation wins, annotations.md "Whitelist source range")."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    objects = (ingress("plain", HOST, ("/", "Prefix", "echo")),
               ingress("own", "own.foo.com", ("/", "Prefix", "other"), whitelist_source_range="127.0.3.0/24"))
    serve(proxy, [echo, other], None, *objects)
    passed = await request(proxy.port, "/", host=HOST, source="127.0.1.5")
    assert passed.status == 200 and passed.header("server") is not None  # no ConfigMap: the pod's Server passes
    serve(proxy, [echo, other], {"server-tokens": "false", "whitelist-source-range": "127.0.1.0/24"}, *objects)
    hidden = await request(proxy.port, "/", host=HOST, source="127.0.1.5")
    assert hidden.status == 200 and hidden.header("server") is None
    assert (await request(proxy.port, "/", host=HOST, source="127.0.2.5")).status == 403
    assert (await request(proxy.port, "/", host="own.foo.com", source="127.0.3.5")).status == 200
    assert (await request(proxy.port, "/", host="own.foo.com", source="127.0.1.5")).status == 403
    serve(proxy, [echo, other], {"server-tokens": "true"}, *objects)
    shown = await request(proxy.port, "/", host=HOST, source="127.0.2.5")
    assert shown.header_all("server") == ["pyngress"]


async def test_proxy_body_size_is_the_default_of_ingresses_without_their_own(make_proxy, make_pods):
    """configmap.md "proxy-body-size" (nginx client_max_body_size at the http level, default 1m): Ingresses without
    the annotation get 413 over it, one with proxy-body-size keeps its own (annotations.md "Custom max body
    size"); "0" lifts the limit; changed live, and without the key Settings.proxy_body_size applies again."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy(configmap="ingress-nginx/controller", proxy_body_size=4096)
    objects = (ingress("plain", HOST, ("/", "Prefix", "echo")),
               ingress("own", "own.foo.com", ("/", "Prefix", "other"), proxy_body_size="8k"))

    async def status(size: int, host: str = HOST) -> int:
        return (await request(proxy.port, "/upload", host=host, method="POST", body=b"x" * size)).status

    serve(proxy, [echo, other], {"proxy-body-size": "1k"}, *objects)
    assert (await status(1024), await status(1025)) == (200, 413)
    assert (await status(8192, "own.foo.com"), await status(8193, "own.foo.com")) == (200, 413)
    serve(proxy, [echo, other], {"proxy-body-size": "0"}, *objects)
    assert await status(100_000) == 200
    serve(proxy, [echo, other], {}, *objects)  # the key gone: the process's default (4096 here)
    assert (await status(4096), await status(4097)) == (200, 413)


SENT = [("X-Forwarded-Port", "1234"), ("X-Forwarded-Proto", "myproto"), ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Host", "myhost")]


async def test_use_forwarded_headers_is_applied_live(make_proxy, make_pods):
    """test/e2e/settings/forwarded_headers.go: "should trust X-Forwarded headers when setting is true" and
    "should not trust X-Forwarded headers when setting is false", the ConfigMap updated between the two (as the
    e2e test does with UpdateNginxConfigMapData), on the running server; compute-full-forwarded-for
    (configmap.md) appends the connection's address instead."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    plain = ingress("plain", HOST, ("/", "Prefix", "echo"))

    async def seen(source: str = "127.0.1.8") -> dict[str, str]:
        return forwarded(await request(proxy.port, host=HOST, headers=SENT, source=source))

    serve(proxy, [echo], {"use-forwarded-headers": "true"}, plain)
    assert await seen() == {"Host": "myhost", "X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.4",
                            "X-Forwarded-Proto": "myproto", "X-Forwarded-Port": "1234", "X-Forwarded-Host": "myhost"}
    serve(proxy, [echo], {"use-forwarded-headers": "true", "compute-full-forwarded-for": "true"}, plain)
    assert (await seen())["X-Forwarded-For"] == "1.2.3.4, 127.0.1.8"
    serve(proxy, [echo], {"use-forwarded-headers": "false"}, plain)
    assert await seen() == {"Host": HOST, "X-Forwarded-For": "1.2.3.4, 127.0.1.8", "X-Real-IP": "127.0.1.8",
                            "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(proxy.port),
                            "X-Forwarded-Host": HOST}


async def test_enable_real_ip_with_forwarded_for_header_and_proxy_real_ip_cidr(make_proxy, make_pods):
    """test/e2e/settings/enable_real_ip.go "trusts X-Forwarded-For header only when setting is true" (the address
    only: X-Forwarded-Proto/-Host/-Port stay the proxy's), with configmap.md "forwarded-for-header" (another
    header names the client) and "proxy-real-ip-cidr" (only connections from these networks are believed);
    the flags' values are what the ConfigMap does not set; a bad network trusts no one (fail closed)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller", proxy_real_ip_cidr=("127.0.9.0/24",))
    plain = ingress("plain", HOST, ("/", "Prefix", "echo"))
    sent = [*SENT, ("CF-Connecting-IP", "203.0.113.7")]

    async def seen(source: str) -> dict[str, str]:
        return forwarded(await request(proxy.port, host=HOST, headers=sent, source=source))

    serve(proxy, [echo], {"enable-real-ip": "true"}, plain)  # trusted: the flag's 127.0.9.0/24
    assert (await seen("127.0.9.4"))["X-Real-IP"] == "1.2.3.4"
    assert (await seen("127.0.1.8"))["X-Real-IP"] == "127.0.1.8"
    config = serve(proxy, [echo], {"enable-real-ip": "true", "forwarded-for-header": "CF-Connecting-IP",
                                   "proxy-real-ip-cidr": "127.0.1.0/24"}, plain)
    inside = await seen("127.0.1.8")
    assert inside["X-Real-IP"] == inside["X-Forwarded-For"] == "203.0.113.7"
    assert (inside["X-Forwarded-Proto"], inside["X-Forwarded-Host"]) == ("http", HOST)
    assert (await seen("127.0.9.4"))["X-Real-IP"] == "127.0.9.4"
    assert not [w for w in config.warnings if w.kind == "ConfigMap"]
    config = serve(proxy, [echo], {"enable-real-ip": "true", "proxy-real-ip-cidr": "127.0.1.0/33"}, plain)
    assert [w.name for w in config.warnings if "proxy-real-ip-cidr" in w.message] == [KEY[1]]
    assert "fail closed" in next(w.message for w in config.warnings if "proxy-real-ip-cidr" in w.message)
    assert (await seen("127.0.9.4"))["X-Real-IP"] == "127.0.9.4"
    serve(proxy, [echo], {"enable-real-ip": "true"}, plain)  # fixed (the key gone): the flag's networks again
    assert (await seen("127.0.9.4"))["X-Real-IP"] == "1.2.3.4"


async def test_use_proxy_protocol_is_read_when_the_listeners_start(make_pods, caplog):
    """test/e2e/settings/proxy_protocol.go "should respect port passed by the PROXY Protocol": with the
    ConfigMap's use-proxy-protocol the header's address reaches the pod as X-Forwarded-For. A listener property:
    the value the ConfigMap has when the listeners start applies, a later change is a warning naming the
    ConfigMap and the key (it needs a restart), and the listeners keep reading the header."""
    (echo,) = await make_pods("echo")
    proxy = Proxy(Settings(bind="127.0.0.1", http_port=0, access_log=False, configmap="ingress-nginx/controller"))
    try:
        plain = ingress("plain", HOST, ("/", "Prefix", "echo"))
        serve(proxy, [echo], {"use-proxy-protocol": "true"}, plain)
        await proxy.server.start()
        response = await ask(proxy.port, v1("192.0.2.7"), host=HOST)
        assert response.status == 200 and echoed(response)["X-Forwarded-For"] == ["192.0.2.7"]
        with caplog.at_level(logging.WARNING, logger="pyngress.proxy"):
            serve(proxy, [echo], {"use-proxy-protocol": "false"}, plain)
        [message] = [r.getMessage() for r in caplog.records if "use-proxy-protocol" in r.getMessage()]
        assert "ConfigMap ingress-nginx/controller" in message and "restart" in message
        response = await ask(proxy.port, v1("192.0.2.8"), host=HOST)
        assert response.status == 200 and echoed(response)["X-Forwarded-For"] == ["192.0.2.8"]
    finally:
        await proxy.close()


async def test_custom_headers_reach_the_client_once_allowed(make_proxy, make_pods):
    """test/e2e/annotations/customheaders.go: the custom-headers ConfigMap's headers are set on the answer once
    the controller ConfigMap's global-allowed-response-headers lists them (a pod's own header of that name is
    replaced: more_set_headers); before that, and with the ConfigMap missing, the Ingress answers 503."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    headers = {("default", "custom-headers"): {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "custom-headers", "namespace": "default"},
        "data": {"My-Custom-Header": "42", "Content-Language": "fr"}}}
    web = ingress("web", HOST, ("/", "Prefix", "echo"), custom_headers="default/custom-headers")
    serve(proxy, [echo], {}, web)
    assert (await request(proxy.port, "/", host=HOST)).status == 503  # ConfigMap missing
    serve(proxy, [echo], {}, web, config_maps=headers)
    assert (await request(proxy.port, "/", host=HOST)).status == 503  # headers not allowed
    serve(proxy, [echo], {"global-allowed-response-headers": "My-Custom-Header,Content-Language"}, web,
          config_maps=headers)
    response = await request(proxy.port, "/", host=HOST)
    assert response.status == 200 and response.json()["pod"] == "echo"
    assert response.header("My-Custom-Header") == "42"
    assert response.header("Content-Language") == "fr"


async def test_proxy_body_size_of_the_configmap_bounds_gateway_routes_too(make_proxy, make_pods):
    """configmap.md "proxy-body-size": nginx's client_max_body_size is controller-wide, so a ConfigMap that sets
    it bounds Gateway API routes (Route.body_limit BODY_LIMIT_GLOBAL) too; without the key they have no limit
    (the Gateway API has no such field), while Ingress routes keep the process's default."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller", proxy_body_size=4096)
    key = "default/echo:80"
    rules = [Rule("gw.foo.com", "/", key, body_limit=BODY_LIMIT_GLOBAL),
             Rule("ing.foo.com", "/", key, body_limit=BODY_LIMIT_DEFAULT)]
    clusters = [cluster(key, [echo.endpoint])]

    def publish(data: dict[str, str]) -> None:
        base = GlobalConfig.from_settings(proxy.settings)
        config, _ = parse_config(data, base=base, where="ingress-nginx/controller")
        proxy.publish_config(replace(make_config(rules, clusters), global_config=config), clusters)

    async def status(size: int, host: str) -> int:
        return (await request(proxy.port, "/upload", host=host, method="POST", body=b"x" * size)).status

    publish({})
    assert await status(100_000, "gw.foo.com") == 200
    assert (await status(4096, "ing.foo.com"), await status(4097, "ing.foo.com")) == (200, 413)
    publish({"proxy-body-size": "1k"})
    assert (await status(1024, "gw.foo.com"), await status(1025, "gw.foo.com")) == (200, 413)
    assert await status(1025, "ing.foo.com") == 413


async def test_custom_http_errors_of_the_configmap_go_to_the_default_backend(make_proxy, make_pods):
    """configmap.md "custom-http-errors" (answered by the default backend, --default-backend-service;
    and annotations.md "Custom HTTP Errors"): the ConfigMap's statuses of
    every Ingress without its own list go to the default backend with X-Code; an Ingress's own list replaces it."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/errors")
    serve(proxy, [app, errors], {"custom-http-errors": "404,503"},
          ingress("plain", HOST, ("/", "Prefix", "app")),
          ingress("own", "own.foo.com", ("/", "Prefix", "app"), custom_http_errors="500"))

    async def answer(path: str, host: str = HOST) -> tuple[int, str, str]:
        response = await request(proxy.port, path, host=host)
        if response.header("X-Pod") == "errors":
            headers = {name.lower(): value for name, value in response.json()["headers"]}
            return response.status, "errors", headers["x-code"]
        return response.status, "app", ""  # (the pod's /status answers carry no X-Pod)

    assert await answer("/status/404") == (200, "errors", "404")
    assert await answer("/status/500") == (500, "app", "")
    assert await answer("/status/404", "own.foo.com") == (404, "app", "")
    assert await answer("/status/500", "own.foo.com") == (200, "errors", "500")


async def test_proxy_set_headers_reach_the_pods_and_follow_their_configmap(make_proxy, make_pods):
    """configmap.md "proxy-set-headers" and docs/examples/customization/custom-headers: the headers of the ConfigMap
    the key names are "include[d] in all requests flowing from nginx to the backends" (nginx.tmpl's
    proxy_set_header: the client's field of that name is replaced); a change of that ConfigMap is a new Config
    (ingress-nginx needed a restart); a missing one adds nothing and everything keeps serving."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    app = ingress("app", HOST, ("/", "Prefix", "echo"))

    def headers_map(data: dict[str, str]) -> dict[Any, Any]:
        return {("ingress-nginx", "custom-headers"): {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "custom-headers", "namespace": "ingress-nginx"}, "data": data}}

    async def seen() -> dict[str, str]:
        response = await request(proxy.port, "/", host=HOST, headers=[("X-Different-Name", "client")])
        assert response.status == 200
        return {name.lower(): value for name, value in response.json()["headers"]}

    key = {"proxy-set-headers": "ingress-nginx/custom-headers"}
    serve(proxy, [echo], key, app, config_maps=headers_map({"X-Using-Nginx-Controller": "true",
                                                          "X-Different-Name": "true"}))
    headers = await seen()
    assert (headers["x-using-nginx-controller"], headers["x-different-name"]) == ("true", "true")
    serve(proxy, [echo], key, app, config_maps=headers_map({"X-Using-Nginx-Controller": "again"}))
    headers = await seen()
    assert (headers["x-using-nginx-controller"], headers["x-different-name"]) == ("again", "client")
    config = serve(proxy, [echo], key, app)
    headers = await seen()
    assert "x-using-nginx-controller" not in headers
    assert [w.message for w in config.warnings if "proxy-set-headers" in w.message] == [
        "key proxy-set-headers: ConfigMap ingress-nginx/custom-headers not found; no headers added to upstream "
        "requests"]


async def test_https_redirects_name_no_port_and_use_http_redirect_code(make_proxy, make_pods):
    """lua_ingress.lua (redirect_to_https: Location "https://<host><uri>", the port written only with
    use-port-in-redirects; status config.http_redirect_code), nginx.tmpl's from-to-www server (`return
    {{ $all.Cfg.HTTPRedirectCode }}`) and configmap.md "http-redirect-code" (301, 302, 307 or 308; default 308).
    The proxy's HTTPS port (--https-port 8443 here) is not put in the Location."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller", https_port=8443)
    forced = ingress("forced", HOST, ("/", "Prefix", "echo"), force_ssl_redirect="true",
                     from_to_www_redirect="true")

    async def moved(host: str) -> tuple[int, str | None]:
        response = await request(proxy.port, "/app?q=1", host=host)
        return response.status, response.header("Location")

    serve(proxy, [echo], {}, forced)
    assert await moved(HOST) == (308, f"https://{HOST}/app?q=1")
    serve(proxy, [echo], {"http-redirect-code": "301"}, forced)
    assert await moved(HOST) == (301, f"https://{HOST}/app?q=1")
    assert await moved(f"www.{HOST}") == (301, f"http://{HOST}:{proxy.port}/app?q=1")
    # A code nginx does not redirect with keeps 308, with a warning naming the ConfigMap and the key.
    config = serve(proxy, [echo], {"http-redirect-code": "303"}, forced)
    assert await moved(HOST) == (308, f"https://{HOST}/app?q=1")
    assert [(w.kind, w.namespace, w.name) for w in config.warnings if "http-redirect-code" in w.message] == [
        ("ConfigMap", *KEY)]


async def test_publish_https_port_is_written_into_https_redirects(make_proxy, make_pods):
    """pyngress's --publish-https-port plays ingress-nginx's use-port-in-redirects (lua_ingress.lua writes
    "https://<host>:<port><uri>" with it): clients that reach HTTPS on another port than 443 are sent there."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller", publish_https_port=30443)
    serve(proxy, [echo], {}, ingress("forced", HOST, ("/", "Prefix", "echo"), force_ssl_redirect="true"))
    response = await request(proxy.port, "/app", host=HOST)
    assert (response.status, response.header("Location")) == (308, f"https://{HOST}:30443/app")


async def test_the_error_backend_does_not_get_proxy_set_headers(make_proxy, make_pods):
    """nginx.tmpl's CUSTOM_ERRORS location (`location @custom_<upstream>_<code>`) has proxy_set_header directives of
    its own (X-Code, X-Format, X-Original-URI, X-Namespace, ..., Host), so it inherits none, and the ConfigMap's
    proxy-set-headers are set in each route's location only: the pod gets them, the error backend does not (the
    client's other fields, yes), for an Ingress's default-backend and for --default-backend-service alike."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/errors")
    set_headers = {("ingress-nginx", "custom-headers"): {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "custom-headers", "namespace": "ingress-nginx"},
        "data": {"X-Using-Nginx-Controller": "true"}}}
    serve(proxy, [app, errors], {"proxy-set-headers": "ingress-nginx/custom-headers", "custom-http-errors": "404"},
          ingress("own", HOST, ("/", "Prefix", "app"), custom_http_errors="404", default_backend="errors"),
          config_maps=set_headers)

    async def headers(path: str, host: str) -> tuple[str, dict[str, str]]:
        response = await request(proxy.port, path, host=host, headers=[("X-Client", "kept")])
        return response.header("X-Pod") or "", {name.lower(): value for name, value in response.json()["headers"]}

    pod, seen = await headers("/", HOST)
    assert (pod, seen["x-using-nginx-controller"], seen["x-client"]) == ("app", "true", "kept")
    for host in (HOST, "unknown.foo.com"):  # the Ingress's default-backend; the default server's
        pod, seen = await headers("/status/404", host)
        assert (pod, seen["x-code"], seen["x-client"]) == ("errors", "404", "kept"), host
        assert "x-using-nginx-controller" not in seen, host


async def test_default_backend_requests_are_logged_only_with_enable_access_log_for_default_backend(
        make_proxy, make_pods):
    """default_backend.go "enables access logging for default backend" / "disables access logging for default
    backend" and configmap.md "enable-access-log-for-default-backend" (default false): the default server's root
    location (controller.go: Logs.Access from that key) writes no access log line for requests no rule matches;
    a known host's unmatched path (its root location takes its Ingress's annotations) and the Ingress's own paths
    are logged."""
    app, fallback = await make_pods("app", "fallback")
    proxy = await make_proxy(configmap="ingress-nginx/controller", default_backend_service="default/fallback")
    app_ingress = ingress("app", HOST, ("/app", "Prefix", "app"))
    with logged_lines(proxy) as lines:
        serve(proxy, [app, fallback], {}, app_ingress)
        for host, path in ((HOST, "/app"), (HOST, "/somethingElse"), ("foo", "/somethingTwo")):
            assert (await request(proxy.port, path, host=host)).status == 200, (host, path)
        serve(proxy, [app, fallback], {"enable-access-log-for-default-backend": "true"}, app_ingress)
        assert (await request(proxy.port, "/somethingOne", host="foo")).status == 200
    assert [(entry["host"], entry["path"]) for entry in lines] == [
        (HOST, "/app"), (HOST, "/somethingElse"), ("foo", "/somethingOne")]


async def test_the_proxys_own_404_follows_enable_access_log_for_default_backend(make_proxy, make_pods):
    """Without --default-backend-service, ingress-nginx's default server "_" sends what no rule matches to its own
    404 server (nginx.tmpl: "backend for when default-backend-service is not configured", `access_log off`), and
    the default server's root location is logged only with enable-access-log-for-default-backend (controller.go
    createServers); host-less rules are the default server's too. A named host's unmatched path goes to its own root
    location, whose Ingress annotations log it (enable-access-log defaults to true)."""
    (app,) = await make_pods("app")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    app_ingress = ingress("app", HOST, ("/app", "Prefix", "app"))
    hostless = ingress("hostless", "", ("/any", "Prefix", "app"))
    with logged_lines(proxy) as lines:
        serve(proxy, [app], {}, app_ingress)
        for host, path, status in ((HOST, "/app", 200), (HOST, "/somethingElse", 404), ("foo", "/somethingTwo", 404)):
            assert (await request(proxy.port, path, host=host)).status == status, (host, path)
        serve(proxy, [app], {}, app_ingress, hostless)
        for host, path, status in (("foo", "/any", 200), ("foo", "/somethingThree", 404)):
            assert (await request(proxy.port, path, host=host)).status == status, (host, path)
        serve(proxy, [app], {"enable-access-log-for-default-backend": "true"}, app_ingress)
        assert (await request(proxy.port, "/somethingOne", host="foo")).status == 404
    assert [(entry["host"], entry["path"], entry["status"]) for entry in lines] == [
        (HOST, "/app", 200), (HOST, "/somethingElse", 404), ("foo", "/any", 200), ("foo", "/somethingOne", 404)]
    # Counted all the same: the unmatched series (empty route labels).
    series = {(entry[0], entry[1]): entry[2] for labels, entries in proxy.server.traffic.snapshot()["routes"]
              if not any(labels) for entry in entries}
    assert series[("GET", 404)] == 4


async def test_a_named_hosts_unmatched_path_follows_its_root_locations_enable_access_log(make_proxy, make_pods):
    """enable-access-log is a location's setting (nginx.tmpl: `access_log off` inside a location whose Logs.Access is
    false). A named host's unmatched path goes to the host's root location "/", which takes the annotations of the
    oldest Ingress naming the host (controller.go createServers: locationApplyAnnotations on the server's first
    location): with its enable-access-log "false", the host's 404s write no line (counted all the same), while a
    younger Ingress's paths on the host log by their own annotation."""
    (app,) = await make_pods("app")
    proxy = await make_proxy(configmap="ingress-nginx/controller")
    quiet = ingress("quiet", HOST, ("/quiet", "Prefix", "app"), created="2024-01-01T00:00:00Z",
                    enable_access_log="false")
    loud = ingress("loud", HOST, ("/loud", "Prefix", "app"), created="2024-02-01T00:00:00Z")
    other = ingress("other", "other.foo.com", ("/x", "Prefix", "app"), enable_access_log="false")
    with logged_lines(proxy) as lines:
        serve(proxy, [app], {}, quiet, loud, other)
        for host, path, status in ((HOST, "/quiet", 200), (HOST, "/loud", 200), (HOST, "/nothing", 404),
                                   ("other.foo.com", "/nothing", 404)):
            assert (await request(proxy.port, path, host=host)).status == status, (host, path)
        serve(proxy, [app], {}, loud)  # the host's root is the younger Ingress's now: logged
        assert (await request(proxy.port, "/nothingAgain", host=HOST)).status == 404
    assert [(entry["host"], entry["path"], entry["status"]) for entry in lines] == [
        (HOST, "/loud", 200), (HOST, "/nothingAgain", 404)]
    series = {(entry[0], entry[1]): entry[2] for labels, entries in proxy.server.traffic.snapshot()["routes"]
              if not any(labels) for entry in entries}
    assert series[("GET", 404)] == 3


async def test_use_port_in_redirects_writes_the_https_port_into_https_redirects(make_proxy, make_pods):
    """lua_ingress.lua (redirect_to_https): with use-port-in-redirects the Location is
    "https://<host>:<listen_ports.https><uri>", the port written even when it is 443; the ConfigMap key is the
    default of the annotation of the same name (portinredirect/main.go: GetDefaultBackend().UsePortInRedirects),
    which wins. Its port is pyngress's --publish-https-port, else --https-port. nginx's own port_in_redirect
    redirects (a prefix location's trailing-slash 301) do not exist here: a Prefix path matches without its
    slash."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(configmap="ingress-nginx/controller", https_port=8443)
    forced = ingress("forced", HOST, ("/", "Prefix", "echo"), force_ssl_redirect="true")
    own = ingress("own", f"own.{HOST}", ("/", "Prefix", "echo"), force_ssl_redirect="true",
                  use_port_in_redirects="false")
    plain = ingress("plain", f"plain.{HOST}", ("/slash/", "Prefix", "echo"))

    async def moved(host: str, path: str = "/app?q=1") -> tuple[int, str | None]:
        response = await request(proxy.port, path, host=host)
        return response.status, response.header("Location")

    config = serve(proxy, [echo], {"use-port-in-redirects": "true"}, forced, own, plain)
    assert [w.message for w in config.warnings if "use-port-in-redirects" in w.message] == []
    assert await moved(HOST) == (308, f"https://{HOST}:8443/app?q=1")
    assert await moved(f"{HOST}:{proxy.port}", "/app/") == (308, f"https://{HOST}:8443/app")
    assert await moved(f"own.{HOST}") == (308, f"https://own.{HOST}/app?q=1")  # the annotation wins
    assert (await moved(f"plain.{HOST}", "/slash"))[0] == 200
    serve(proxy, [echo], {}, forced, ingress("own", f"own.{HOST}", ("/", "Prefix", "echo"),
                                             force_ssl_redirect="true", use_port_in_redirects="true"))
    assert await moved(HOST) == (308, f"https://{HOST}/app?q=1")
    assert await moved(f"own.{HOST}") == (308, f"https://own.{HOST}:8443/app?q=1")
    # --publish-https-port is the port clients reach: written, 443 included.
    published = await make_proxy(configmap="ingress-nginx/controller", https_port=8443, publish_https_port=443)
    serve(published, [echo], {"use-port-in-redirects": "true"}, forced)
    response = await request(published.port, "/app", host=HOST)
    assert (response.status, response.header("Location")) == (308, f"https://{HOST}:443/app")
