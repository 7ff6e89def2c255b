"""Active health checks against real HTTP(S) servers: probe results, thresholds both ways, the balancer
leaving unhealthy endpoints out, verdicts of endpoints and clusters that go away, bounded probing."""

from __future__ import annotations

import asyncio

import pytest

from backend_servers import HttpServer, Pki, leaf_with, root_pem, server_context
from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import BackendTLS, ClusterPolicy, HealthCheck
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream
from proxy.upstream.health import HealthChecker, HealthVerdicts, probe
from proxy.upstream.tls import ClientContexts, UpstreamTLS
from tcp_listener import wait_until

SETTINGS = Settings(upstream_connect_timeout=2)
KEY = "default/web:80"
FAST = HealthCheck(path=b"/healthz", interval=0.02, timeout=1.0, healthy_threshold=2, unhealthy_threshold=3)


@pytest.fixture
async def make_server():
    servers: list[HttpServer] = []

    async def start(host: str = "127.0.0.2", **kwargs) -> HttpServer:
        server = await HttpServer(host, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def checkers():
    made: list[HealthChecker] = []

    def make(upstreams: dict[str, Upstream], **kwargs) -> HealthChecker:
        verdicts = HealthVerdicts(upstreams)
        checker = HealthChecker(verdicts, **kwargs)
        made.append(checker)
        return checker

    yield make
    for checker in made:
        checker.close()


def cluster(*servers: HttpServer, check: HealthCheck | None = FAST, tls: BackendTLS | None = None,
            endpoints: tuple[Endpoint, ...] = ()) -> Cluster:
    policy = ClusterPolicy(health_check=check, tls=tls) if check is not None or tls is not None else None
    return Cluster(key=KEY, namespace="default", service="web", port="80",
                   endpoints=endpoints or tuple(Endpoint(*s.endpoint) for s in servers), policy=policy)


def upstream_with(checker_factory, *servers: HttpServer, **kwargs) -> tuple[Upstream, HealthChecker]:
    upstreams: dict[str, Upstream] = {}
    checker = checker_factory(upstreams)
    upstream = upstreams[KEY] = Upstream(cluster(*servers, **kwargs), settings=SETTINGS, health=checker.verdicts)
    checker.track(upstreams)
    return upstream, checker


# ---------------------------------------------------------------------------------------------- one probe


async def test_probe_results(make_server, make_listener):
    check = HealthCheck(path=b"/ready", timeout=0.3, expected_statuses=(200, 204))
    good = await make_server("127.0.0.2")
    assert await probe(Endpoint(*good.endpoint), check=check, host=b"web.default.svc", tls=None) == ("ok", "")
    head = good.requests[-1]
    assert head.startswith(b"GET /ready HTTP/1.1\r\n")
    assert b"Host: web.default.svc\r\n" in head and b"Connection: close\r\n" in head
    assert b"User-Agent: pyngress-health-check\r\n" in head

    good.status = 204
    assert (await probe(Endpoint(*good.endpoint), check=check, host=b"h", tls=None))[0] == "ok"
    good.status = 503
    assert await probe(Endpoint(*good.endpoint), check=check, host=b"h", tls=None) == ("unexpected_status",
                                                                                         "status 503")
    any_2xx = HealthCheck(expected_statuses=())
    good.status = 299
    assert (await probe(Endpoint(*good.endpoint), check=any_2xx, host=b"h", tls=None))[0] == "ok"

    silent = await make_server("127.0.0.3", mode="silent")
    assert (await probe(Endpoint(*silent.endpoint), check=check, host=b"h", tls=None))[0] == "timeout"
    garbage = await make_server("127.0.0.4", mode="garbage")
    assert (await probe(Endpoint(*garbage.endpoint), check=check, host=b"h", tls=None))[0] == "bad_response"
    closed = await make_listener("127.0.0.5")
    port = closed.port
    await closed.stop()
    result, detail = await probe(Endpoint("127.0.0.5", port), check=check, host=b"h", tls=None)
    assert result == "connect_failure" and detail
    assert [good.connections, silent.connections, garbage.connections] == [4, 1, 1]  # a connection per probe


async def test_probe_over_tls_verifies_like_requests(tmp_path, make_server):
    pki = Pki(tmp_path)
    names: list[str] = []
    server = await make_server(context=server_context(leaf_with(pki, dns=("web.default.svc",)), names=names))
    check = HealthCheck(timeout=2.0)

    def tls(policy: BackendTLS) -> UpstreamTLS:
        return UpstreamTLS(policy, context=ClientContexts().get(policy), server_name="web.default.svc")

    endpoint = Endpoint(*server.endpoint)
    assert await probe(endpoint, check=check, host=b"x", tls=tls(BackendTLS(ca=root_pem(pki)))) == ("ok", "")
    assert b"Host: web.default.svc\r\n" in server.requests[-1] and names == ["web.default.svc"]
    result, detail = await probe(endpoint, check=check, host=b"x", tls=tls(BackendTLS(sni="api.default.svc",
                                                                                        ca=root_pem(pki))))
    assert result == "tls_failure" and "name_mismatch" in detail
    result, detail = await probe(endpoint, check=check, host=b"x",
                                 tls=tls(BackendTLS(ca=root_pem(pki), subject_alt_names=("other",))))
    assert result == "tls_failure" and "match none of other" in detail
    plain = await make_server("127.0.0.3")
    result, _ = await probe(Endpoint(*plain.endpoint), check=check, host=b"x", tls=tls(BackendTLS(verify=False)))
    assert result == "tls_failure"


# ---------------------------------------------------------------------------------------------- verdicts


async def test_unhealthy_after_threshold_failures_and_back_after_threshold_successes(make_server, checkers):
    a = await make_server("127.0.0.2")
    b = await make_server("127.0.0.3")
    upstream, checker = upstream_with(checkers, a, b)
    pool_a, pool_b = upstream.pools
    flips: list[tuple[bool, list[int]]] = []

    def observed(key: str, changes) -> None:
        assert key == KEY
        for endpoint, healthy in changes.items():
            assert endpoint == Endpoint(*a.endpoint)
            flips.append((healthy, list(a.answered)))

    checker.verdicts.observe(observed)
    await wait_until(lambda: len(a.answered) >= 2 and len(b.answered) >= 2)
    assert pool_a.healthy and pool_b.healthy
    a.status = 500
    await wait_until(lambda: flips)
    healthy, answered = flips[0]
    assert healthy is False
    assert answered[-3:] == [500, 500, 500] and answered[-4] == 200  # exactly unhealthy_threshold failures
    assert not pool_a.healthy and pool_b.healthy
    assert [upstream.pick() for _ in range(4)] == [pool_b] * 4  # the balancer leaves it out
    assert checker.verdicts.unhealthy == {KEY: {Endpoint(*a.endpoint)}}

    a.status = 200
    await wait_until(lambda: len(flips) == 2)
    healthy, answered = flips[1]
    assert healthy is True and answered[-2:] == [200, 200] and answered[-3] == 500  # healthy_threshold successes
    assert pool_a.healthy and not checker.verdicts.unhealthy
    assert {upstream.pick() for _ in range(4)} == {pool_a, pool_b}
    assert checker.results["ok"] > 0 and checker.results["unexpected_status"] >= 3
    # Probes never touch the request pools.
    assert not pool_a.idle and not pool_b.idle


async def test_all_endpoints_unhealthy_still_balances_over_all(make_server, checkers):
    a = await make_server("127.0.0.2", status=503)
    b = await make_server("127.0.0.3", status=503)
    upstream, checker = upstream_with(checkers, a, b)
    await wait_until(lambda: checker.verdicts.count(KEY) == 2)
    assert not any(pool.healthy for pool in upstream.pools)
    assert {upstream.pick() for _ in range(4)} == set(upstream.pools)  # failing open beats refusing everything


async def test_an_endpoint_that_leaves_takes_its_verdict_along(make_server, checkers):
    a = await make_server("127.0.0.2", status=500)
    b = await make_server("127.0.0.3")
    upstream, checker = upstream_with(checkers, a, b)
    await wait_until(lambda: checker.verdicts.count(KEY) == 1)
    upstream.update(cluster(b))
    await wait_until(lambda: checker.verdicts.count(KEY) == 0)
    # Back with the same address: a fresh, healthy pool (Kubernetes says it is ready), then probed again.
    a.status = 200
    upstream.update(cluster(a, b))
    assert all(pool.healthy for pool in upstream.pools)


async def test_pools_made_after_a_verdict_start_unhealthy(make_server):
    verdicts = HealthVerdicts()
    a = await make_server("127.0.0.2")
    verdicts.apply(KEY, {Endpoint(*a.endpoint): False})
    upstream = Upstream(cluster(a, endpoints=(Endpoint(*a.endpoint), Endpoint("127.0.0.3", 80))),
                        settings=SETTINGS, health=verdicts)
    assert [pool.healthy for pool in upstream.pools] == [False, True]
    assert upstream.pick() is upstream.pools[1]
    verdicts.upstreams = {KEY: upstream}
    verdicts.apply(KEY, None)  # forgotten: every pool healthy again
    assert all(pool.healthy for pool in upstream.pools) and not verdicts.unhealthy
    assert {upstream.pick() for _ in range(2)} == set(upstream.pools)


async def test_probers_stop_when_the_cluster_goes_or_drops_its_check(make_server, checkers):
    a = await make_server("127.0.0.2", status=500)
    upstreams: dict[str, Upstream] = {}
    checker = checkers(upstreams)
    upstream = upstreams[KEY] = Upstream(cluster(a), settings=SETTINGS, health=checker.verdicts)
    checker.track(upstreams)
    prober = checker.probers[KEY]
    await wait_until(lambda: checker.verdicts.count(KEY) == 1)

    upstream.update(cluster(a, check=None))  # the policy dropped its check
    checker.track(upstreams)
    assert not checker.probers and upstream.pools[0].healthy and not checker.verdicts.unhealthy
    await wait_until(lambda: prober.task.done() and not prober.probes)
    probes = a.connections
    await asyncio.sleep(FAST.interval * 5)  # several intervals: a prober still running would have probed
    assert a.connections == probes

    upstream.update(cluster(a))  # the check is back
    checker.track(upstreams)
    prober = checker.probers[KEY]
    await wait_until(lambda: checker.verdicts.count(KEY) == 1)
    del upstreams[KEY]  # the cluster disappears
    checker.track(upstreams)
    assert not checker.probers and not checker.verdicts.unhealthy
    await wait_until(prober.task.done)


async def test_a_changed_check_applies_from_the_next_probe(make_server, checkers):
    a = await make_server("127.0.0.2", status=404)
    upstream, checker = upstream_with(checkers, a)
    await wait_until(lambda: checker.verdicts.count(KEY) == 1)
    upstream.update(cluster(a, check=HealthCheck(path=b"/other", interval=0.02, healthy_threshold=1,
                                                 expected_statuses=(404,))))
    await wait_until(lambda: checker.verdicts.count(KEY) == 0)
    assert a.requests[-1].startswith(b"GET /other ")


async def test_probes_of_a_large_cluster_are_spread_over_the_interval(checkers):
    """40 endpoints, one round per 0.4 s: their probes start one by one over the round, not all at once."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    servers = [HttpServer(f"127.0.1.{i + 1}", on_accept=lambda: arrivals.append(loop.time())) for i in range(40)]
    try:
        for server in servers:
            await server.start()
        check = HealthCheck(interval=0.4, timeout=1.0)
        upstream_with(checkers, *servers, check=check)
        await wait_until(lambda: len(arrivals) >= 40)
        first_round = arrivals[:40]
        # Late timers can only stretch a round, never squeeze it: the bound holds on a loaded machine too.
        assert first_round[-1] - first_round[0] >= check.interval / 4
    finally:
        for server in servers:
            await server.stop()


async def test_probes_in_flight_are_bounded(checkers):
    """Endpoints that never answer hold their probes until the timeout; a new probe starts only when one ends."""
    bound = 2
    accepted = 0
    checker: HealthChecker | None = None
    excess: list[int] = []

    def on_accept() -> None:
        nonlocal accepted
        accepted += 1
        assert checker is not None
        finished = sum(checker.results.values())  # counted as each probe frees its slot
        if accepted > bound + finished:
            excess.append(accepted)

    silent = [HttpServer(f"127.0.2.{i + 1}", mode="silent", on_accept=on_accept) for i in range(6)]
    try:
        for server in silent:
            await server.start()
        upstreams: dict[str, Upstream] = {}
        checker = checkers(upstreams, max_in_flight=bound)
        upstreams[KEY] = Upstream(cluster(*silent, check=HealthCheck(interval=0.01, timeout=0.2)), settings=SETTINGS,
                                  health=checker.verdicts)
        checker.track(upstreams)
        await wait_until(lambda: accepted >= 3 * bound, timeout=10)
        assert not excess
        assert checker.results["timeout"] >= bound
        assert max(s.most_open for s in silent) <= 1  # one probe per endpoint at a time
    finally:
        for server in silent:
            await server.stop()
