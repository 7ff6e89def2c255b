"""Per-route metrics and the access log of the real process, checked against what clients really sent and got."""

from __future__ import annotations

import asyncio
import socket

from prometheus_client.parser import text_string_to_metric_families

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, service

HOST = "shop.example.test"
ROUTE = {"namespace": "default", "ingress": "shop", "host": HOST}
UNMATCHED = {"namespace": "", "ingress": "", "host": "", "path": "", "service": ""}


async def exchange(port: int, request: bytes) -> bytes:
    """Send one raw request (with Connection: close) and read the whole answer up to the proxy's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(DEADLINE):
            return await reader.read(-1)
    finally:
        writer.close()


def raw(method: str, path: str, host: str, body: bytes = b"", **fields: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    for name, value in fields.items():
        head += f"{name.replace('_', '-')}: {value}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    return head.encode() + body


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(all_samples: list, name: str, **labels: str) -> float | None:
    found = [s.value for s in all_samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


async def shop(echo_pods, manifests, *, with_web: bool = True):
    [api] = await echo_pods.replicas(("api-1", "127.0.0.4"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("api.yaml", service("api", pods=[api]))
    paths = [("/api", "Prefix", "api", 80)]
    if with_web:
        [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
        manifests.write("web.yaml", service("web", pods=[web]))
        paths.append(("/web", "Prefix", "web", 80))
    manifests.write("ingress.yaml", ingress("shop", host=HOST, paths=paths))
    return api


async def test_route_series_count_requests_bytes_and_durations(echo_pods, manifests, pyngress):
    await shop(echo_pods, manifests)
    proc = await pyngress(manifests.path, "--no-access-log")
    port = proc.ports["http"]

    sent_get = received_get = 0
    for index in range(3):
        request = raw("GET", f"/api/items?page={index}", HOST, User_Agent="metrics-test")
        answer = await exchange(port, request)
        assert answer.startswith(b"HTTP/1.1 200 ")
        sent_get += len(request)
        received_get += len(answer)
    sent_post = received_post = 0
    for _ in range(2):
        request = raw("POST", "/api/upload", HOST, body=b"x" * 1000)
        answer = await exchange(port, request)
        assert answer.startswith(b"HTTP/1.1 200 ")
        sent_post += len(request)
        received_post += len(answer)
    missing = await exchange(port, raw("GET", "/", "nobody.example.test"))
    assert missing.startswith(b"HTTP/1.1 404 ")

    status, text = await proc.admin_get("/metrics")
    assert status == 200
    found = samples(text)
    get_200 = {**ROUTE, "path": "/api", "service": "api", "method": "GET", "status": "200"}
    post_200 = {**get_200, "method": "POST"}
    assert value(found, "pyngress_requests_total", **get_200) == 3
    assert value(found, "pyngress_requests_total", **post_200) == 2
    # bytes as the clients counted them: request line, header and body in; everything read out
    assert value(found, "pyngress_request_size_bytes_total", **get_200) == sent_get
    assert value(found, "pyngress_request_size_bytes_total", **post_200) == sent_post
    assert value(found, "pyngress_response_size_bytes_total", **get_200) == received_get
    assert value(found, "pyngress_response_size_bytes_total", **post_200) == received_post
    # histograms: every request in +Inf, durations positive, the upstream part no longer than the whole
    assert value(found, "pyngress_request_duration_seconds_count", **get_200) == 3
    assert value(found, "pyngress_request_duration_seconds_bucket", **get_200, le="+Inf") == 3
    assert value(found, "pyngress_upstream_duration_seconds_count", **get_200) == 3
    total = value(found, "pyngress_request_duration_seconds_sum", **get_200)
    upstream = value(found, "pyngress_upstream_duration_seconds_sum", **get_200)
    assert total is not None and upstream is not None and 0 < upstream <= total
    assert value(found, "pyngress_upstream_retries_total", **get_200) == 0
    # no route: empty route labels, the proxy's own status, no upstream time
    unmatched = {**UNMATCHED, "method": "GET", "status": "404"}
    assert value(found, "pyngress_requests_total", **unmatched) == 1
    assert value(found, "pyngress_response_size_bytes_total", **unmatched) == len(missing)
    assert value(found, "pyngress_upstream_duration_seconds_count", **unmatched) is None
    # the web route got no request: no series for it yet
    assert value(found, "pyngress_requests_total", path="/web") is None
    assert value(found, "pyngress_connections_total", listener="http") >= 6


async def test_retries_are_counted_on_the_route(echo_pods, manifests, pyngress):
    [live] = await echo_pods.replicas(("live", "127.0.0.5"))
    dead = socket.socket()  # bound, never listening: connections to it are refused
    dead.bind(("127.0.0.6", live.port))
    try:
        slice_objects = service("flaky", pods=[live])
        slice_objects[1]["endpoints"].append({"addresses": ["127.0.0.6"], "conditions": {"ready": True}})
        manifests.write("class.yaml", INGRESS_CLASS)
        manifests.write("flaky.yaml", slice_objects)
        manifests.write("ingress.yaml", ingress("shop", host=HOST, paths=[("/", "Prefix", "flaky", 80)]))
        proc = await pyngress(manifests.path, "--no-access-log")
        # round robin: of two requests, one starts at the dead endpoint and is retried on the live one
        for _ in range(2):
            assert (await proc.request("/", host=HOST))[0] == 200
        status, text = await proc.admin_get("/metrics")
        labels = {**ROUTE, "path": "/", "service": "flaky", "method": "GET", "status": "200"}
        assert value(samples(text), "pyngress_upstream_retries_total", **labels) == 1
        assert value(samples(text), "pyngress_requests_total", **labels) == 2
    finally:
        dead.close()


async def test_series_of_a_removed_route_disappear(echo_pods, manifests, pyngress):
    await shop(echo_pods, manifests)
    proc = await pyngress(manifests.path, "--no-access-log")
    for path in ("/api/a", "/web/b", "/web/c"):
        assert (await proc.request(path, host=HOST))[0] == 200
    web = {"path": "/web", "service": "web", "method": "GET", "status": "200"}
    api = {"path": "/api", "service": "api", "method": "GET", "status": "200"}
    status, text = await proc.admin_get("/metrics")
    assert value(samples(text), "pyngress_requests_total", **web) == 2

    # the /web path goes away: its series go with it, the /api series keeps its count
    manifests.write("ingress.yaml", ingress("shop", host=HOST, paths=[("/api", "Prefix", "api", 80)]))

    async def web_gone() -> bool:
        _, text = await proc.admin_get("/metrics")
        return all(s.labels.get("path") != "/web" for s in samples(text))

    await eventually(web_gone)
    _, text = await proc.admin_get("/metrics")
    assert value(samples(text), "pyngress_requests_total", **api) == 1
    assert value(samples(text), "pyngress_request_duration_seconds_count", **api) == 1


async def test_access_log_lines(echo_pods, manifests, pyngress):
    api = await shop(echo_pods, manifests, with_web=False)
    proc = await pyngress(manifests.path)
    status, _ = await proc.request("/api/items?q=1&r=two", host=HOST, headers={"User-Agent": "log-test/1.0",
                                                                              "X-Request-ID": "req-42"})
    assert status == 200
    # An unknown host's 404 writes no line (ingress-nginx's default server, enable-access-log-for-default-backend
    # false); a known host's unmatched path does.
    await exchange(proc.ports["http"], raw("GET", "/missing", "nobody.example.test"))
    answer = await exchange(proc.ports["http"], raw("GET", "/missing", HOST))

    first, second = await proc.access_log(2)
    assert first["request_id"] == "req-42" and first["client"] == "127.0.0.1"
    assert (first["method"], first["host"], first["path"], first["query"]) == ("GET", HOST, "/api/items", "q=1&r=two")
    assert first["protocol"] == "HTTP/1.1" and first["status"] == 200 and first["user_agent"] == "log-test/1.0"
    assert first["upstream"] == f"127.0.0.4:{api.port}" and first["retries"] == 0
    assert (first["namespace"], first["ingress"], first["route_host"], first["route_path"], first["service"]) == (
        "default", "shop", HOST, "/api", "api")
    assert first["bytes_in"] > 0 and first["bytes_out"] > 0
    assert 0 <= first["upstream_duration"] <= first["duration"]
    assert first["time"].endswith("Z") and first["time"][:2] == "20"

    assert second["status"] == 404 and second["bytes_out"] == len(answer) and second["host"] == HOST
    assert second["upstream"] is None and second["upstream_duration"] is None
    assert second["namespace"] == second["ingress"] == second["route_path"] == ""


async def test_no_access_log_writes_nothing(echo_pods, manifests, pyngress):
    await shop(echo_pods, manifests, with_web=False)
    proc = await pyngress(manifests.path, "--no-access-log")
    for _ in range(3):
        assert (await proc.request("/api", host=HOST))[0] == 200
    await proc.close()  # the process flushes its log on the way out; its stdout is read to the end
    assert [line for line in proc.stdout_lines if line.strip()] == []


async def test_no_route_metrics_leaves_out_the_route_series_only(echo_pods, manifests, pyngress):
    await shop(echo_pods, manifests, with_web=False)
    proc = await pyngress(manifests.path, "--no-access-log", "--no-route-metrics")
    for _ in range(3):
        assert (await proc.request("/api", host=HOST))[0] == 200
    status, text = await proc.admin_get("/metrics")
    found = samples(text)
    assert not [s for s in found if s.name.startswith(("pyngress_requests", "pyngress_request_duration"))]
    assert value(found, "pyngress_connections_total", listener="http") >= 3
    assert value(found, "pyngress_routes") == 1
