"""`pyngress --workers 2`: one control process, two worker processes sharing the listeners.

Real processes on loopback: the workers share one port (SO_REUSEPORT), follow manifest edits
relayed by the control process, are started again when killed, and stop with the control
process; /metrics of the control process adds up what the workers counted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from e2e_harness import (
    DEADLINE,
    INGRESS_CLASS,
    START_TIMEOUT,
    eventually,
    ingress,
    metric,
    scrape,
    service,
    start_pyngress,
)
from proxy.kube.cache import KINDS, ObjectCache
from proxy.settings import Settings
from proxy.tls.native import available
from proxy.workers.pool import WorkerPool

HOST = "app.example.test"
WORKERS = ("--workers", "2")


async def setup_app(echo_pods, manifests):
    """web (127.0.0.2) and api (127.0.0.3) pods; HOST routes / to web."""
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    [api] = await echo_pods.replicas(("api-1", "127.0.0.3"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[web]))
    manifests.write("api.yaml", service("api", pods=[api]))
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    return web, api


def children(pid: int) -> set[int]:
    """Live child processes of `pid` (zombies not counted), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rfind(")") + 2:].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def pod_for(proc, path: str, host: str = HOST) -> str | int:
    """The pod answering one request on a fresh connection (its status when not 200)."""
    try:
        status, body = await proc.request(path, host=host, timeout=5)
    except (TimeoutError, OSError, aiohttp.ClientError) as error:  # a reset while a worker dies
        return type(error).__name__
    return body["pod"] if status == 200 else status


async def consecutive(proc, path: str, pod: str, count: int, *, host: str = HOST) -> bool:
    """`count` requests in a row, each on a fresh connection, all answered by `pod`."""
    for _ in range(count):
        if await pod_for(proc, path, host=host) != pod:
            return False
    return True


async def test_two_workers_share_connections_and_metrics_add_up(echo_pods, manifests, pyngress):
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS)
    assert set(proc.ports) == {"http", "https", "admin"}
    workers = children(proc.process.pid)
    assert len(workers) == 2
    assert await proc.admin_get("/readyz") == (200, "ok")

    sent = 200
    answers = [await pod_for(proc, f"/page/{i}") for i in range(sent)]
    assert answers == ["web-1"] * sent

    labels = {"namespace": "default", "ingress": "app", "host": HOST, "path": "/", "service": "web",
              "method": "GET", "status": "200"}
    # The control process asks both workers at scrape time; every request is counted once.
    await eventually(lambda: _requests_counted(proc, labels, sent))
    status, text = await proc.admin_get("/metrics")
    assert status == 200
    per_worker = [metric(text, "pyngress_worker_connections_total", worker=str(i)) for i in (0, 1)]
    assert all(count and count > 0 for count in per_worker), per_worker
    assert sum(per_worker) == metric(text, "pyngress_connections_total", listener="http") >= sent
    assert metric(text, "pyngress_workers") == 2
    assert [metric(text, "pyngress_worker_config_generation", worker=str(i)) for i in (0, 1)] == [1, 1]
    # CPU and memory cover the control process and both workers.
    own = _resident(proc.process.pid)
    assert metric(text, "process_resident_memory_bytes") > own + 0.5 * sum(_resident(pid) for pid in workers)
    assert metric(text, "process_cpu_seconds_total") > 0
    # One configuration, built by the control process too (for /debug/routes, status and Events).
    assert (await proc.admin_get("/debug/routes"))[1]["hosts"][HOST][0]["endpoints"]


async def _requests_counted(proc, labels: dict[str, str], count: int) -> bool:
    return await scrape(proc, "pyngress_requests_total", **labels) == count


def _resident(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE")


async def _handshake(port: int, server_name: str = "unknown.example.test") -> bytes:
    """One TLS handshake on a fresh connection; the DER certificate the proxy presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(DEADLINE):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_name)
    certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return certificate


async def test_every_worker_serves_the_same_default_certificate(echo_pods, manifests, pyngress):
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS)
    fingerprints = set()
    for _ in range(40):  # fresh connections: the kernel spreads them over both workers
        fingerprints.add(await _handshake(proc.ports["https"]))
    status, text = await proc.admin_get("/metrics")
    spread = [metric(text, "pyngress_worker_connections_total", worker=w) for w in ("0", "1")]
    assert all(count and count > 0 for count in spread), spread  # both workers answered some of them
    assert len(fingerprints) == 1


def _resume(port: int, client: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession | None]:
    """One HTTPS request on a fresh connection offering `session`; (resumed?, the session to offer next). The
    answer is read to the end, so the TLS 1.3 tickets sent after the handshake are in the session."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw, \
            client.wrap_socket(raw, server_hostname=HOST, session=session) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        return tls.session_reused, tls.session


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
async def test_a_session_ticket_resumes_on_every_worker(echo_pods, manifests, pyngress, maximum):
    """The workers encrypt session tickets with the control process's keys (proxy/tls/tickets.py), so a client
    resumes whichever worker the kernel hands its next connection, as with nginx's workers (keys drawn by the master;
    ingress-nginx `ssl-session-ticket-key`, docs/user-guide/nginx-configuration/configmap.md). Each worker had its
    own keys before: half of these connections were full handshakes."""
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS)
    port = proc.ports["https"]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.maximum_version = maximum
    before = [await scrape(proc, "pyngress_worker_connections_total", worker=w) or 0 for w in ("0", "1")]
    reused, session = await asyncio.to_thread(_resume, port, client, None)
    assert not reused and session is not None
    results = []
    for _ in range(24):  # fresh connections (new source ports): the kernel spreads them over both workers
        reused, next_session = await asyncio.to_thread(_resume, port, client, session)
        results.append(reused)
        session = next_session or session
    after = [await scrape(proc, "pyngress_worker_connections_total", worker=w) or 0 for w in ("0", "1")]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)  # both workers resumed some
    assert results == [True] * len(results)
    # On the transport the build serves by default (native where compiled), in each worker: one line each.
    assert proc.log().count(f"HTTPS listeners use the {expected_transport()} TLS transport") == 2, proc.log()


def expected_transport() -> str:
    """The TLS transport the HTTPS listeners of a process started by the harness use (--tls-transport auto unless
    PYNGRESS_TEST_TLS_TRANSPORT names one)."""
    asked = os.environ.get("PYNGRESS_TEST_TLS_TRANSPORT", "auto")
    return "native" if asked != "asyncio" and available()[0] else "asyncio"


async def test_both_workers_follow_a_manifest_change(echo_pods, manifests, pyngress):
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS)
    assert await pod_for(proc, "/new/thing") == "web-1"

    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80),
                                                                     ("/new", "Prefix", "api", 80)]))
    # 40 fresh connections in a row, spread over both workers by the kernel: all see the new route.
    await eventually(lambda: consecutive(proc, "/new/thing", "api-1", 40))
    manifests.write("other.yaml", ingress("other", host="other.example.test", paths=[("/", "Prefix", "api", 80)]))
    await eventually(lambda: consecutive(proc, "/", "api-1", 40, host="other.example.test"))
    assert await pod_for(proc, "/") == "web-1"
    assert await proc.admin_get("/readyz") == (200, "ok")


async def test_a_killed_worker_is_started_again(echo_pods, manifests, pyngress):
    await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS)
    labels = {"ingress": "app", "path": "/", "status": "200"}
    assert await consecutive(proc, "/", "web-1", 10)
    await eventually(lambda: _requests_counted(proc, labels, 10))  # each worker's counts as of now
    for _ in range(8):  # TLS handshakes on fresh connections, spread over both workers
        await _handshake(proc.ports["https"])

    async def handshakes_counted() -> bool:
        return await scrape(proc, "pyngress_ssl_handshakes_total") == 8

    await eventually(handshakes_counted)
    before = children(proc.process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> set[int]:
        now = children(proc.process.pid)
        return now if len(now) == 2 and victim not in now else set()

    after = await eventually(replaced)
    assert before - {victim} < after
    await eventually(lambda: _readyz_status(proc, 200))
    # The sums over workers do not go down: the dead worker's last counts are kept.
    assert await scrape(proc, "pyngress_requests_total", **labels) == 10
    assert await scrape(proc, "pyngress_ssl_handshakes_total") == 8
    await eventually(lambda: consecutive(proc, "/", "web-1", 20))
    assert await scrape(proc, "pyngress_requests_total", **labels) >= 30
    assert await scrape(proc, "pyngress_worker_restarts_total") == 1
    assert await scrape(proc, "pyngress_workers") == 2
    assert f"pid {victim}) exited with status -9" in proc.log()


async def test_sigterm_drains_every_worker_and_exits_0(echo_pods, manifests, pyngress):
    web, _ = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS, "--shutdown-grace-period", "10")
    workers = children(proc.process.pid)
    assert len(workers) == 2

    slow = asyncio.ensure_future(proc.request("/slow?seconds=1", host=HOST))
    async with asyncio.timeout(DEADLINE):
        await web.slow_started.wait()
    proc.signal(signal.SIGTERM)
    await eventually(lambda: _readyz_status(proc, 503))
    status, body = await slow  # in flight on one of the workers: it finishes
    assert status == 200 and body["pod"] == "web-1"
    assert await proc.wait(timeout=DEADLINE) == 0
    assert not [pid for pid in workers if alive(pid)]


async def test_a_second_signal_kills_the_workers_and_exits_1(echo_pods, manifests, pyngress):
    web, _ = await setup_app(echo_pods, manifests)
    proc = await pyngress(manifests.path, *WORKERS, "--shutdown-grace-period", "60")
    workers = children(proc.process.pid)
    slow = asyncio.ensure_future(proc.request("/slow?seconds=60", host=HOST))
    async with asyncio.timeout(DEADLINE):
        await web.slow_started.wait()
    proc.signal(signal.SIGTERM)
    await eventually(lambda: _readyz_status(proc, 503))
    proc.signal(signal.SIGTERM)  # the slow request would hold the drain for a minute
    assert await proc.wait(timeout=DEADLINE) == 1
    assert not [pid for pid in workers if alive(pid)]
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)


async def _readyz_status(proc, expected: int) -> bool:
    try:
        return (await proc.admin_get("/readyz", timeout=2))[0] == expected
    except OSError:
        return False


async def test_cluster_mode_keeps_one_watch_per_kind(kube_api, cluster, echo_pods):
    """Cluster mode with two workers: the API server sees one LIST and one WATCH per kind (the control
    process's); endpoint changes reach both workers; the control process writes the Ingress status."""
    [web, web2] = await echo_pods.replicas(("web-1", "127.0.0.2"), ("web-2", "127.0.0.4"))
    for obj in [INGRESS_CLASS, *service("web", pods=[web, web2]),
                ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)])]:
        kube_api.create(obj)
    proc = await cluster.start(*WORKERS, "--publish-status-address", "192.0.2.10")
    assert len(children(proc.process.pid)) == 2
    assert {await pod_for(proc, "/") for _ in range(10)} == {"web-1", "web-2"}

    kube_api.apply(service("web", pods=[web2])[1])  # web-1's pod is gone
    await eventually(lambda: consecutive(proc, "/", "web-2", 40))

    def status_written() -> bool:
        status = kube_api.get("Ingress", "default", "app").get("status") or {}
        return (status.get("loadBalancer") or {}).get("ingress") == [{"ip": "192.0.2.10"}]

    await eventually(status_written)
    plurals = ("ingresses", "ingressclasses", "services", "endpointslices", "endpoints", "secrets", "configmaps")
    assert {p: kube_api.watch_count(p) for p in plurals} == dict.fromkeys(plurals, 1)
    lists = [(r.resource, r.verb) for r in kube_api.requests if r.verb == "list"]
    assert sorted(lists) == sorted((p, "list") for p in plurals)
    proc.signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_a_worker_that_cannot_listen_fails_the_start(echo_pods, manifests, tmp_path):
    """A port held by a socket without SO_REUSEPORT: the workers cannot bind it; the control process
    says so and exits 1 instead of starting them again forever."""
    await setup_app(echo_pods, manifests)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The last --http-port wins over the harness's "--http-port 0".
        proc = await start_pyngress(manifests.path, *WORKERS, "--http-port", str(port),
                                    log_path=tmp_path / "pyngress.log", admin_only=True)
        try:
            assert await proc.wait(timeout=START_TIMEOUT) == 1
        finally:
            await proc.close()
    log = proc.log()
    assert "exited with status 1 before listening" in log and "ddress already in use" in log, log


async def test_a_worker_slow_to_start_is_not_taken_for_stalled(echo_pods):
    """Until it listens a worker gets the start timeout, not the stall timeout: a start slowed past the stall
    timeout (here: stopped with SIGSTOP before it could listen, as imports on a busy or CPU-limited node can be)
    is waited for rather than killed and started again, which would only start the same slow start over."""
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    cache = ObjectCache()
    objects = [INGRESS_CLASS, *service("web", pods=[web]),
               ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)])]
    for kind in KINDS:
        cache.replace(kind, [o for o in objects if o["kind"] == kind])
        cache.mark_synced(kind)
    settings = Settings(bind="127.0.0.1", http_port=0, https_port=0, workers=1, access_log=False,
                        log_level="warning", shutdown_grace_period=5)
    pool = WorkerPool(settings=settings, cache=cache, stall_timeout=1.0, start_timeout=START_TIMEOUT)
    pool.start()
    stopped = None
    try:
        await eventually(lambda: pool.workers.get(0) is not None and pool.workers[0].pid is not None)
        stopped = pool.workers[0].pid
        os.kill(stopped, signal.SIGSTOP)
        assert not pool.workers[0].listening  # (a Python process needs far longer than this to start)
        await asyncio.sleep(3.5)  # three pings past the stall timeout: the time itself is what is tested
        assert alive(stopped) and pool.restarts == 0 and pool.workers[0].pid == stopped
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        async with asyncio.timeout(START_TIMEOUT):
            await pool.wait_listening()
        assert await _get_pod(f"http://127.0.0.1:{pool.http_port}/") == "web-1" and pool.restarts == 0
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        status = await pool.stop(grace=5, force=asyncio.Event())
    assert status == 0


async def test_a_worker_that_stops_answering_is_replaced(echo_pods):
    """A stopped worker (SIGSTOP: it reads nothing, answers no ping) is killed and started again, and
    a worker started late gets the whole cache, then every write after it."""
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    [api] = await echo_pods.replicas(("api-1", "127.0.0.3"))
    cache = ObjectCache()
    objects = [INGRESS_CLASS, *service("web", pods=[web]), *service("api", pods=[api]),
               ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)])]
    for kind in KINDS:
        cache.replace(kind, [o for o in objects if o["kind"] == kind])
        cache.mark_synced(kind)
    settings = Settings(bind="127.0.0.1", http_port=0, https_port=0, workers=2, access_log=False,
                        log_level="warning", shutdown_grace_period=5)
    pool = WorkerPool(settings=settings, cache=cache, stall_timeout=2.0)
    pool.start()
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await pool.wait_listening()
        url = f"http://127.0.0.1:{pool.http_port}/"
        assert await _get_pod(url) == "web-1"
        victim = pool.workers[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)

        def replaced() -> bool:
            worker = pool.workers.get(0)
            return worker is not None and worker.pid != victim and worker.listening

        await eventually(replaced, timeout=START_TIMEOUT)
        assert not alive(victim) and pool.restarts == 1
        # A write after the restart reaches both workers.
        cache.apply("Ingress", "MODIFIED", ingress("app", host=HOST, paths=[("/", "Prefix", "api", 80)]))

        async def api_everywhere() -> bool:
            return all([await _get_pod(url) == "api-1" for _ in range(30)])

        await eventually(api_everywhere)
        pids = [w.pid for w in pool.workers.values()]
    finally:
        status = await pool.stop(grace=5, force=asyncio.Event())
    assert status == 0
    assert not [pid for pid in pids if pid is not None and alive(pid)]


async def _get_pod(url: str) -> str | int:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(url, headers={"Host": HOST}, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status != 200:
                    return response.status
                return (await response.json())["pod"]
        except (TimeoutError, OSError, aiohttp.ClientError) as error:
            return type(error).__name__
