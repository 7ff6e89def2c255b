"""The real `pyngress` process in file mode: routing, live edits, broken files, admin port, graceful stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from e2e_harness import INGRESS_CLASS, ROOT, eventually, ingress, service

HOST = "app.example.test"


async def setup_app(echo_pods, manifests):
    """Two web replicas (127.0.0.2/.3), one api pod (127.0.0.4), and an Ingress for HOST."""
    web = await echo_pods.replicas(("web-1", "127.0.0.2"), ("web-2", "127.0.0.3"))
    [api] = await echo_pods.replicas(("api-1", "127.0.0.4"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=web))
    manifests.write("api.yaml", service("api", pods=[api]))
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80),
                                                                     ("/api", "Prefix", "api", 80)]))
    return web, api


async def pod_for(proc, path: str, host: str = HOST) -> str | int:
    status, body = await proc.request(path, host=host)
    return body["pod"] if status == 200 else status


async def test_routes_requests_to_the_pods(echo_pods, manifests, pyngress):
    web, api = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path)
    assert set(proc.ports) == {"http", "admin"} | ({"https"} if "https" in proc.ports else set())

    status, body = await proc.request("/api/v1/items?x=1", host=HOST, headers={"X-Test": "yes"})
    assert status == 200
    assert body["pod"] == "api-1" and body["path"] == "/api/v1/items" and body["headers"]["x-test"] == "yes"
    # round robin over both web replicas
    seen = {await pod_for(proc, "/page") for _ in range(4)}
    assert seen == {"web-1", "web-2"}
    # host with port and upper case still matches; other hosts get 404
    assert await pod_for(proc, "/api", host=HOST.upper() + ":80") == "api-1"
    assert await pod_for(proc, "/", host="other.example.test") == 404


async def test_manifest_edits_apply_without_restart(echo_pods, manifests, pyngress):
    web, api = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path)
    assert await pod_for(proc, "/new/thing") in ("web-1", "web-2")

    # add a path
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[
        ("/", "Prefix", "web", 80), ("/api", "Prefix", "api", 80), ("/new", "Prefix", "api", 80)]))
    await eventually(lambda: _is(proc, "/new/thing", "api-1"))

    # change the Service's endpoints: only web-2 stays
    manifests.write("web.yaml", service("web", pods=[web[1]]))

    async def only_web_2() -> bool:
        _, routes = await proc.admin_get("/debug/routes")
        return routes["hosts"][HOST][-1]["endpoints"] == [f"127.0.0.3:{web[1].port}"]

    await eventually(only_web_2)
    assert {await pod_for(proc, "/page") for _ in range(4)} == {"web-2"}

    # a file with a YAML syntax error keeps the last good state
    generation = await proc.generation()
    manifests.write("ingress.yaml", "kind: Ingress\nmetadata: {name: app\nspec: [\n")
    await eventually(lambda: "invalid YAML" in proc.log())
    assert await pod_for(proc, "/new/thing") == "api-1"
    assert await proc.generation() == generation

    # delete the Ingress: its routes go away
    manifests.remove("ingress.yaml")
    await eventually(lambda: _is(proc, "/api", 404))


async def _is(proc, path: str, expected: str | int) -> bool:
    return await pod_for(proc, path) == expected


async def test_admin_port(echo_pods, manifests, pyngress):
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path)
    assert await proc.admin_get("/healthz") == (200, "ok")
    assert await proc.admin_get("/readyz") == (200, "ok")

    for _ in range(3):
        assert await pod_for(proc, "/api") == "api-1"
    status, text = await proc.admin_get("/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(text))
    values = {s.name: s.value for f in families for s in f.samples if not s.labels}
    by_listener = {(s.name, s.labels.get("listener")): s.value for f in families for s in f.samples}
    requests = [s for f in families for s in f.samples if s.name == "pyngress_requests_total"]
    assert sum(s.value for s in requests if s.labels["path"] == "/api" and s.labels["status"] == "200") == 3
    assert by_listener[("pyngress_connections_total", "http")] >= 3  # the test client does not reuse connections
    assert ("pyngress_active_connections", "http") in by_listener
    assert values["pyngress_routes"] == 2 and values["pyngress_backends"] == 2
    assert values["pyngress_ready_endpoints"] == 3

    status, routes = await proc.admin_get("/debug/routes")
    assert status == 200 and routes["generation"] >= 1
    assert [r["path"] for r in routes["hosts"][HOST]] == ["/api", "/"]


async def test_sigterm_lets_the_request_in_flight_finish(echo_pods, manifests, pyngress):
    web, api = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, "--shutdown-grace-period", "20")

    in_flight = asyncio.create_task(proc.request("/api/slow?seconds=1.5", host=HOST, timeout=30))
    await asyncio.wait_for(api.slow_started.wait(), timeout=15)
    proc.signal(signal.SIGTERM)

    async def not_ready() -> bool:
        try:
            status, _ = await proc.admin_get("/readyz", timeout=2)
        except aiohttp.ClientError:
            return True  # already gone: also not ready
        return status == 503

    await eventually(not_ready)
    status, body = await asyncio.wait_for(in_flight, timeout=30)
    assert status == 200 and body["pod"] == "api-1"
    assert await proc.wait(timeout=20) == 0
    assert "SIGTERM" in proc.log()


async def test_grace_period_bounds_the_shutdown(echo_pods, manifests, pyngress):
    web, api = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, "--shutdown-grace-period", "0.5")
    in_flight = asyncio.create_task(proc.request("/api/slow?seconds=60", host=HOST, timeout=60))
    await asyncio.wait_for(api.slow_started.wait(), timeout=15)
    proc.signal(signal.SIGTERM)
    assert await proc.wait(timeout=20) == 0  # far sooner than the 60 s the request wanted
    in_flight.cancel()
    await asyncio.gather(in_flight, return_exceptions=True)


def test_port_in_use_is_a_clear_error(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "--manifests", str(tmp_path), "--bind", "127.0.0.1",
             "--http-port", "0", "--admin-port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert "cannot start" in done.stderr and str(port) in done.stderr


def test_missing_manifest_path_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--manifests", str(tmp_path / "nope"), "--bind", "127.0.0.1",
         "--http-port", "0", "--https-port", "0", "--admin-port", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "nope" in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_ready_means_every_listener_accepts(echo_pods, manifests, pyngress):
    """An operator's probe: poll /readyz tightly and connect the instant it says 200."""
    await setup_app(echo_pods, manifests)
    http, https = _free_port(), _free_port()
    proc = await pyngress(manifests.path, "--http-port", str(http), "--https-port", str(https), admin_only=True)
    async with asyncio.timeout(30):
        while True:
            status, _ = await proc.admin_get("/readyz", timeout=2)
            if status == 200:
                break
            await asyncio.sleep(0.002)
    for port in (http, https):
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=2)
        writer.close()
    await proc.read_ports()
    assert await pod_for(proc, "/api") == "api-1"
