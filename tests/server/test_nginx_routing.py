"""ingress-nginx routing annotations (issue 12, second batch) end to end: Ingress objects → the real builder →
the real proxy → echo pods.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section whose
behaviour it reproduces. Every wait is bounded (server_harness.TIMEOUT).
"""

from __future__ import annotations

import json
import os
import threading

from proxy.accesslog import AccessLog
from proxy.objects import Snapshot
from proxy.routing.build import build
from server_harness import closed_by_peer, connect, encode_request, read_response, request
from test_nginx_annotations import ingress, serve


async def test_proxy_body_size_answers_413_for_a_content_length_over_it(make_proxy, make_pods):
    """annotations.md "Custom max body size" / proxy.go "should set proxy client-max-body-size to 8m": a body over
    client_max_body_size gets 413 before the pod sees anything; one at the limit passes."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [pod], ingress("small", "small.test", ("/", "Prefix", "app"), proxy_body_size="1k"))
    response = await request(proxy.port, "/upload", host="small.test", method="POST", body=b"x" * 1025)
    assert response.status == 413 and pod.requests == 0
    response = await request(proxy.port, "/upload", host="small.test", method="POST", body=b"x" * 1024)
    assert (response.status, response.json()["size"]) == (200, 1024)


async def test_proxy_body_size_counts_a_chunked_body_as_it_arrives(make_proxy, make_pods):
    """nginx's client_max_body_size applies to chunked bodies too: 413 once the body grows past the limit, and
    the connection closes (the rest of the body is never read)."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [pod], ingress("small", "small.test", ("/", "Prefix", "app"), proxy_body_size="1k"))
    reader, writer = await connect(proxy.port)
    try:
        writer.write(encode_request("/upload", host="small.test", method="POST",
                                    headers=[("Transfer-Encoding", "chunked")]))
        writer.write(b"200\r\n" + b"a" * 512 + b"\r\n")
        await writer.drain()
        writer.write(b"201\r\n" + b"b" * 513 + b"\r\n")
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 413
        assert await closed_by_peer(reader)
    finally:
        writer.close()
    # A chunked body within the limit is forwarded whole.
    reader, writer = await connect(proxy.port)
    try:
        writer.write(encode_request("/upload", host="small.test", method="POST",
                                    headers=[("Transfer-Encoding", "chunked")]))
        writer.write(b"400\r\n" + b"c" * 1024 + b"\r\n0\r\n\r\n")
        response = await read_response(reader)
        assert (response.status, response.json()["size"]) == (200, 1024)
    finally:
        writer.close()


async def test_proxy_body_size_default_is_the_global_setting_and_zero_is_unlimited(make_proxy, make_pods):
    """configmap.md "proxy-body-size": the global default (1m, Settings.proxy_body_size) applies to Ingresses
    without the annotation; the annotation "0" turns the limit off for its Ingress."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy(proxy_body_size=2048)
    serve(proxy, [pod], ingress("plain", "plain.test", ("/", "Prefix", "app")),
          ingress("open", "open.test", ("/", "Prefix", "app"), proxy_body_size="0"))
    body = b"y" * 4096
    assert (await request(proxy.port, "/upload", host="plain.test", method="PUT", body=body)).status == 413
    response = await request(proxy.port, "/upload", host="open.test", method="PUT", body=body)
    assert (response.status, response.json()["size"]) == (200, 4096)
    # Without a body nothing is checked.
    assert (await request(proxy.port, "/", host="plain.test")).status == 200


async def test_proxy_body_size_default_is_one_megabyte(make_proxy, make_pods):
    """ingress-nginx's default proxy-body-size is 1m: 1 MiB passes, one byte more is refused."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [pod], ingress("plain", "plain.test", ("/", "Prefix", "app")))
    body = b"z" * (1 << 20)
    response = await request(proxy.port, "/upload", host="plain.test", method="PUT", body=body)
    assert (response.status, response.json()["size"]) == (200, 1 << 20)
    response = await request(proxy.port, "/upload", host="plain.test", method="PUT", body=body + b"z")
    assert response.status == 413


# ---------------------------------------------------------------------------------------------- error pages

def _headers(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.json()["headers"]}


async def test_default_backend_answers_for_a_service_without_endpoints(make_proxy, make_pods):
    """default_backend.go "should use a custom default backend as upstream": the path's Service ("invalid")
    does not exist; the default-backend Service answers (200) with x-code 503, the Ingress and Service names
    and the client's request id, at path "/" (the custom error location's `rewrite (.*) / break`)."""
    (errors,) = await make_pods("errors")
    proxy = await make_proxy()
    serve(proxy, [errors], ingress("default-backend", "default-backend", ("/", "Prefix", "invalid"),
                                   default_backend="errors"))
    response = await request(proxy.port, "/alma/armud?x=1", host="default-backend",
                             headers=[("X-Request-ID", "something-unique"), ("Accept", "text/html")])
    assert response.status == 200
    body = response.json()
    assert (body["pod"], body["path"], body["method"]) == ("errors", "/", "GET")
    headers = _headers(response)
    assert {name: headers.get(name) for name in ("x-code", "x-ingress-name", "x-service-name", "x-service-port",
                                                 "x-namespace", "x-request-id", "x-original-uri", "x-format")} == {
        "x-code": "503", "x-ingress-name": "default-backend", "x-service-name": "invalid", "x-service-port": "80",
        "x-namespace": "default", "x-request-id": "something-unique", "x-original-uri": "/alma/armud?x=1",
        "x-format": "text/html"}


async def test_default_backend_gets_the_request_body_of_a_service_without_endpoints(make_proxy, make_pods):
    """The 503 case is decided before any of the body was sent: the default backend gets the body too (nginx
    sends the buffered body to the error location)."""
    (errors,) = await make_pods("errors")
    proxy = await make_proxy()
    serve(proxy, [errors], ingress("db", "db.test", ("/", "Prefix", "invalid"), default_backend="errors"))
    response = await request(proxy.port, "/form", host="db.test", method="POST", body=b"a=1")
    assert (response.status, response.json()["body"], response.json()["method"]) == (200, "a=1", "POST")


async def test_custom_http_errors_are_answered_by_the_default_backend(make_proxy, make_pods):
    """annotations.md "Custom HTTP Errors" / customhttperrors.go: the listed codes of the pod's answers go to the
    default-backend Service (X-Code the pod's status); other statuses reach the client as the pod sent them."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy()
    serve(proxy, [app, errors], ingress("errs", "errs.test", ("/", "Prefix", "app"), custom_http_errors="404,500",
                                        default_backend="errors"))
    response = await request(proxy.port, "/status/404", host="errs.test")
    assert (response.status, response.json()["pod"]) == (200, "errors")
    headers = _headers(response)
    assert (headers["x-code"], headers["x-service-name"], headers["x-original-uri"]) == ("404", "app", "/status/404")
    assert (await request(proxy.port, "/status/500", host="errs.test")).json()["pod"] == "errors"
    response = await request(proxy.port, "/status/502", host="errs.test")
    assert (response.status, response.body) == (502, b"status")
    assert (await request(proxy.port, "/", host="errs.test")).json()["pod"] == "app"


async def test_custom_http_errors_cover_the_proxys_own_502(make_proxy, make_pods):
    """nginx's error_page also catches nginx's own answers: a pod that refuses connections (502) is answered by
    the default backend when 502 is listed. Without default-backend the annotation does nothing (a warning)."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy()
    config = serve(proxy, [app, errors],
                   ingress("errs", "errs.test", ("/", "Prefix", "app"), custom_http_errors="502",
                           default_backend="errors"),
                   ingress("alone", "alone.test", ("/", "Prefix", "app"), custom_http_errors="502"))
    assert any("custom-http-errors has no effect" in w.message for w in config.warnings)
    await app.stop()
    response = await request(proxy.port, "/", host="errs.test")
    assert (response.status, _headers(response)["x-code"]) == (200, "502")
    assert (await request(proxy.port, "/", host="alone.test")).status == 502


# ---------------------------------------------------------------------------------------------- hosts

async def test_server_alias_answers_for_the_alias_and_nothing_else(make_proxy, make_pods):
    """alias.go: without the annotation "bar" is 404; with server-alias "bar" both names reach the pod."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [pod], ingress("foo", "foo", ("/", "Prefix", "app")))
    assert (await request(proxy.port, "/", host="bar")).status == 404
    serve(proxy, [pod], ingress("foo", "foo", ("/", "Prefix", "app"), server_alias="bar"))
    for host in ("foo", "bar"):
        response = await request(proxy.port, "/", host=host)
        assert (response.status, response.json()["pod"]) == (200, "app"), host
        assert _headers(response)["host"] == host


async def test_from_to_www_redirect_answers_308_with_the_port_written(make_proxy, make_pods):
    """fromtowwwredirect.go "should redirect from www HTTP to HTTP": Location http://<host>:<port>/foo (the port
    always written, ngx_srv_redirect.lua); the rule host itself is served."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    host = "fromtowwwredirect.bar.com"
    serve(proxy, [pod], ingress("www", host, ("/", "Prefix", "app"), from_to_www_redirect="true"))
    response = await request(proxy.port, "/foo", host="www." + host)
    assert (response.status, response.header("Location")) == (308, f"http://{host}:{proxy.port}/foo")
    response = await request(proxy.port, "/", host="www." + host)
    assert (response.status, response.header("Location")) == (308, f"http://{host}:{proxy.port}")
    assert pod.requests == 0
    assert (await request(proxy.port, "/foo", host=host)).json()["pod"] == "app"


async def test_upstream_vhost_is_the_host_the_pod_sees(make_proxy, make_pods):
    """upstreamvhost.go "set host to upstreamvhost.bar.com": the pod gets that Host; X-Forwarded-Host keeps the
    client's."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    serve(proxy, [pod], ingress("vhost", "vhost.test", ("/", "Prefix", "app"), upstream_vhost="upstreamvhost.bar.com"))
    headers = _headers(await request(proxy.port, "/", host="vhost.test"))
    assert (headers["host"], headers["x-forwarded-host"]) == ("upstreamvhost.bar.com", "vhost.test")


# ---------------------------------------------------------------------------------------------- service-upstream

async def test_service_upstream_sends_requests_to_the_cluster_ip(make_proxy, make_pods):
    """serviceupstream.go "should use the Service Cluster IP and Port": with service-upstream "true" the proxy
    dials the Service's ClusterIP and port (here a stand-in pod listening there) instead of the pod addresses
    its EndpointSlice lists; without it, the pods."""
    app, vip = await make_pods("app", "vip")
    proxy = await make_proxy()
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"},
               "spec": {"clusterIP": vip.host, "ports": [{"port": vip.port, "protocol": "TCP",
                                                          "targetPort": app.port}]}}
    slices = {"svc-1": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "svc-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "svc"}},
        "endpoints": [{"addresses": [app.host], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": app.port, "protocol": "TCP"}]}}
    objects = [ingress("su", "su.test", ("/", "Prefix", "svc"), service_upstream="true"),
               ingress("plain", "plain.test", ("/", "Prefix", "svc"))]
    for obj in objects:
        obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] = vip.port
    snap = Snapshot(ingresses={("default", obj["metadata"]["name"]): obj for obj in objects},
                    services={("default", "svc"): service}, endpoint_slices={("default", "svc"): slices})
    config = build(snap, proxy.settings)
    proxy.publish_config(config, list(config.clusters.values()))
    assert (await request(proxy.port, "/", host="su.test")).json()["pod"] == "vip"
    assert (await request(proxy.port, "/", host="plain.test")).json()["pod"] == "app"


# ---------------------------------------------------------------------------------------------- access log

async def test_enable_access_log_false_writes_no_line_for_its_ingress(make_proxy, make_pods):
    """annotations.md "Enable Access Log": "false" turns the access log off for the Ingress's locations
    (`access_log off`, as disableaccesslog.go checks for the global key); the other Ingresses keep theirs."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy()
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    proxy.server.access_log = AccessLog(write_end, interval=0.01)
    serve(proxy, [pod], ingress("quiet", "quiet.test", ("/", "Prefix", "app"), enable_access_log="false"),
          ingress("loud", "loud.test", ("/", "Prefix", "app")))
    for host in ("quiet.test", "loud.test", "quiet.test"):
        assert (await request(proxy.port, "/", host=host)).status == 200
    proxy.server.access_log.close()
    os.close(write_end)
    reader.join(timeout=10)
    os.close(read_end)
    lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert [entry["host"] for entry in lines] == ["loud.test"]


async def test_custom_http_errors_under_a_retry_policy(make_proxy, make_pods):
    """nginx tries the next upstream first (proxy_next_upstream http_503 here), then the error page intercepts
    what is left: a 404 (not retried) goes to the default backend; the route's traffic policy is let go."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy()
    serve(proxy, [app, errors], ingress("errs", "errs.test", ("/", "Prefix", "app"), custom_http_errors="404",
                                        default_backend="errors", proxy_next_upstream="error http_503",
                                        proxy_next_upstream_tries="2"))
    for _ in range(3):  # a reused keep-alive connection to the error backend too
        response = await request(proxy.port, "/status/404", host="errs.test")
        assert (response.status, _headers(response)["x-code"]) == (200, "404")
    assert (await request(proxy.port, "/", host="errs.test")).json()["pod"] == "app"


async def test_error_pages_carry_the_real_client_address(make_proxy, make_pods):
    """The custom error location (annotations.md "Custom HTTP Errors", the template's `@custom_` location) sets
    `X-Forwarded-For $remote_addr`: behind a trusted proxy (use-forwarded-headers, realip,
    test/e2e/settings/forwarded_headers.go) the real client's address, not the connection's, and `Host
    $best_http_host` (a trusted X-Forwarded-Host's)."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy(use_forwarded_headers=True)
    serve(proxy, [app, errors], ingress("errs", "errs.test", ("/", "Prefix", "app"), custom_http_errors="404",
                                        default_backend="errors"))
    sent = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Host", "public.example")]
    direct = await request(proxy.port, "/", host="errs.test", headers=sent)
    assert direct.json()["pod"] == "app"
    diverted = await request(proxy.port, "/status/404", host="errs.test", headers=sent)
    assert diverted.json()["pod"] == "errors"
    assert _headers(diverted)["x-forwarded-for"] == _headers(direct)["x-forwarded-for"] == "203.0.113.7"
    assert _headers(diverted)["host"] == "public.example"


async def test_error_pages_get_the_error_locations_fields_not_the_proxys_forwarded_ones(make_proxy, make_pods):
    """nginx.tmpl's CUSTOM_ERRORS location sets X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name,
    X-Service-Name, X-Service-Port, X-Request-ID, X-Forwarded-For ($remote_addr) and Host ($best_http_host), and,
    having proxy_set_header directives of its own, inherits none of the location's: the error backend gets no
    X-Forwarded-Proto, -Port, -Host or X-Real-IP of the proxy's; the client's own fields pass as sent (nginx's
    proxy_pass_request_headers), except those the location sets, which replace them."""
    app, errors = await make_pods("app", "errors")
    proxy = await make_proxy()
    serve(proxy, [app, errors], ingress("errs", "errs.test", ("/", "Prefix", "app"), custom_http_errors="404",
                                        default_backend="errors"))
    direct = _headers(await request(proxy.port, "/", host="errs.test"))
    assert {"x-forwarded-proto", "x-forwarded-port", "x-forwarded-host", "x-real-ip"} <= set(direct)
    response = await request(proxy.port, "/status/404?q=1", host="errs.test",
                             headers=[("Accept", "text/html"), ("X-Code", "200"), ("X-Service-Name", "forged"),
                                      ("X-Real-IP", "198.51.100.1"), ("X-Request-ID", "abc123")])
    seen = _headers(response)
    assert response.json()["pod"] == "errors"
    assert {name: seen.get(name) for name in (
        "x-code", "x-format", "x-original-uri", "x-namespace", "x-ingress-name", "x-service-name", "x-service-port",
        "x-request-id", "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-host",
        "host")} == {
        "x-code": "404", "x-format": "text/html", "x-original-uri": "/status/404?q=1", "x-namespace": "default",
        "x-ingress-name": "errs", "x-service-name": "app", "x-service-port": "80", "x-request-id": "abc123",
        "x-forwarded-for": "127.0.0.1", "x-real-ip": "198.51.100.1", "x-forwarded-proto": None,
        "x-forwarded-port": None, "x-forwarded-host": None, "host": "errs.test"}
    assert [name.lower() for name, _ in response.json()["headers"]].count("x-code") == 1


async def test_the_https_redirect_drops_one_trailing_slash_unless_preserve_trailing_slash(make_proxy, make_pods):
    """lua_ingress.lua (redirect_to_https: without preserve-trailing-slash one trailing "/" of $request_uri is
    dropped), forcesslredirect.go (GET / → Location "https://forcesslredirect.bar.com"), settings/tls.go and
    ssl/http_redirect.go (the same for ssl-redirect), and preservetrailingslash.go "should allow preservation of
    trailing slashes" (with "true": "https://forcesslredirect.bar.com/"). A query is part of the URI: only its own
    last "/" would go."""
    (pod,) = await make_pods("app")
    proxy = await make_proxy(publish_https_port=443)
    serve(proxy, [pod],
          ingress("dropping", "forcesslredirect.bar.com", ("/", "Prefix", "app"), force_ssl_redirect="true"),
          ingress("keeping", "keep.bar.com", ("/", "Prefix", "app"), force_ssl_redirect="true",
                  preserve_trailing_slash="true"))

    async def location(host: str, target: str) -> tuple[int, str | None]:
        response = await request(proxy.port, target, host=host)
        return response.status, response.header("Location")

    host = "forcesslredirect.bar.com"
    assert await location(host, "/") == (308, f"https://{host}")
    assert await location(host, "/app/") == (308, f"https://{host}/app")
    assert await location(host, "/app/?a=b") == (308, f"https://{host}/app/?a=b")
    assert await location(host, "/app?next=/") == (308, f"https://{host}/app?next=")
    assert await location(host, "/app") == (308, f"https://{host}/app")
    assert await location("keep.bar.com", "/") == (308, "https://keep.bar.com/")
    assert await location("keep.bar.com", "/app/") == (308, "https://keep.bar.com/app/")
