"""Active health checks: an HTTP GET to each endpoint of a checked cluster, off the request path.

One prober per pod process: in a single process the process itself probes; with `--workers N`
the control process probes and relays its verdicts to the workers, which only apply them
(probing from every worker would multiply the probes by N and let the workers disagree).

    HealthChecker   owns one ClusterProber per cluster whose policy has a `health_check`; `track()`
                    (called by the controller whenever the upstreams change) starts and stops them
    ClusterProber   one task per cluster: each round, one probe per endpoint, spread evenly over the
                    interval (a cluster of thousands of endpoints never probes them all at once)
    HealthVerdicts  the endpoints found unhealthy, by cluster key: flips `EndpointPool.healthy` on the
                    live pools (the balancers skip unhealthy ones), and tells observers (the worker relay)

Probes use connections of their own (a fresh one per probe, closed after the status line: never
the request pools, whose connections a probe could break or hold), TLS when the cluster's policy
has it. Pods spoken to in HTTP/2 (appProtocol kubernetes.io/h2c, backend-protocol GRPC/GRPCS/H2C) are probed in
HTTP/2 (h2c with prior knowledge, or h2 chosen by ALPN): the connection preface and SETTINGS exchange, then a GET
of the check's path whose ``:status`` is judged as an HTTP/1.1 one. An HTTP/1.1 probe would fail against an
h2c-only pod (a grpcio server answers it with HTTP/2 frames) and mark it unhealthy. A gRPC server resets a GET: the
probe then asks again as a gRPC call of the path (POST, application/grpc, no message) and judges its HTTP status
(200 from a serving gRPC server, whatever its grpc-status): proof that the pod speaks HTTP/2 and serves gRPC
streams; the gRPC health protocol (grpc.health.v1) is not spoken.

An endpoint turns unhealthy after `unhealthy_threshold` failed probes in a row and back
after `healthy_threshold` good ones; a new endpoint starts healthy (Kubernetes said it is ready).
At most MAX_PROBES_IN_FLIGHT probes run at once in the process: past that, rounds stretch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import HTTP2, HealthCheck
from proxy.upstream.tls import UpstreamTLS, describe

if TYPE_CHECKING:
    from proxy.upstream.cluster import Upstream

log = logging.getLogger("pyngress.health")

# Probes running at once in this process (each holds a socket until its timeout).
MAX_PROBES_IN_FLIGHT = 256
# Probes of one cluster start at most this often (a 5,000-endpoint cluster checked every 3 s starts
# one every 0.6 ms); closer starts are grouped, so a round costs at most interval/MIN_STEP timers.
MIN_STEP = 0.005
USER_AGENT = b"pyngress-health-check"

# Probe results (the `result` label of pyngress_health_checks_total).
OK = "ok"
UNEXPECTED_STATUS = "unexpected_status"
TIMEOUT = "timeout"
CONNECT_FAILURE = "connect_failure"
TLS_FAILURE = "tls_failure"
BAD_RESPONSE = "bad_response"
RESULTS: tuple[str, ...] = (OK, UNEXPECTED_STATUS, TIMEOUT, CONNECT_FAILURE, TLS_FAILURE, BAD_RESPONSE)

# Verdict changes of one cluster: endpoint -> healthy; None: forget the whole cluster (all healthy).
Changes = Mapping[Endpoint, bool] | None
Observer = Callable[[str, Changes], None]


class HealthVerdicts:
    """The endpoints active checks found unhealthy, by cluster key: the process's one record of them.

    Fed by this process's HealthChecker, or in a worker by the control process's relay. Applying a
    change flips the `healthy` flag of the live pool and has the cluster's balancer see its pools again;
    pools made later (an Upstream created after the verdict came) ask `healthy()`.
    """

    __slots__ = ("unhealthy", "upstreams", "_observers")

    def __init__(self, upstreams: Mapping[str, Upstream] | None = None) -> None:
        self.unhealthy: dict[str, set[Endpoint]] = {}
        # The live upstreams by key (the controller's own dict, updated in place).
        self.upstreams: Mapping[str, Upstream] = upstreams if upstreams is not None else {}
        self._observers: list[Observer] = []

    def healthy(self, key: str, endpoint: Endpoint) -> bool:
        bad = self.unhealthy.get(key)
        return bad is None or endpoint not in bad

    def apply(self, key: str, changes: Changes) -> None:
        """Record verdict changes of one cluster (None: forget it) and apply them to its live pools."""
        known = self.unhealthy.get(key)
        if changes is None:
            if known is None:
                return
            del self.unhealthy[key]
            flips: Mapping[Endpoint, bool] = dict.fromkeys(known, True)
        else:
            flips = changes
            for endpoint, healthy in changes.items():
                if healthy:
                    if known is not None:
                        known.discard(endpoint)
                else:
                    if known is None:
                        known = self.unhealthy[key] = set()
                    known.add(endpoint)
            if known is not None and not known:
                del self.unhealthy[key]
        upstream = self.upstreams.get(key)
        if upstream is not None:
            flipped = False
            for endpoint, healthy in flips.items():
                pool = upstream.pool_of(endpoint)
                if pool is not None and pool.healthy != healthy:
                    pool.healthy = healthy
                    flipped = True
            if flipped:
                upstream.health_changed()
        for observer in list(self._observers):
            observer(key, changes)

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(key, changes)` after each change from now on; returns the function that stops it."""
        self._observers.append(observer)

        def stop() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return stop

    def operations(self) -> Iterator[tuple[str, dict[Endpoint, bool]]]:
        """The current verdicts as changes, for a process that starts with none (a new worker)."""
        for key, endpoints in list(self.unhealthy.items()):
            yield key, dict.fromkeys(endpoints, False)

    def count(self, key: str) -> int:
        return len(self.unhealthy.get(key, ()))


class HealthChecker:
    """Runs one ClusterProber per health-checked cluster of the upstreams it is given; counts probe results."""

    def __init__(self, verdicts: HealthVerdicts, *, max_in_flight: int = MAX_PROBES_IN_FLIGHT) -> None:
        self.verdicts = verdicts
        self.results: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self.probers: dict[str, ClusterProber] = {}
        self.slots = asyncio.Semaphore(max_in_flight)

    def track(self, upstreams: Mapping[str, Upstream]) -> None:
        """Probe the clusters of `upstreams` whose policy asks for it, and only those (call on the event loop
        whenever upstreams appear, go, or change their cluster)."""
        for key, prober in list(self.probers.items()):
            upstream = upstreams.get(key)
            if upstream is not prober.upstream or checked(upstream) is None:
                self._stop(key)
        for key, upstream in upstreams.items():
            if key not in self.probers and checked(upstream) is not None:
                prober = self.probers[key] = ClusterProber(self, upstream)
                prober.start()

    def finished(self, prober: ClusterProber) -> None:
        """A prober ended by itself (its cluster's check was dropped, or the upstream closed)."""
        if self.probers.get(prober.key) is prober:
            self._stop(prober.key)

    def _stop(self, key: str) -> None:
        prober = self.probers.pop(key)
        prober.stop()
        self.verdicts.apply(key, None)

    def close(self) -> None:
        for key in list(self.probers):
            self._stop(key)

    def clusters(self) -> Iterator[tuple[Upstream, int, int]]:
        """(upstream, endpoints checked, endpoints unhealthy now) of each checked cluster."""
        for key, prober in list(self.probers.items()):
            yield prober.upstream, len(prober.states), self.verdicts.count(key)


def checked(upstream: Upstream) -> HealthCheck | None:
    """The health check of an upstream's cluster; None when it has none or the upstream is closed."""
    policy = upstream.cluster.policy
    if policy is None or upstream.closed:
        return None
    return policy.health_check


class EndpointState:
    """One endpoint's run of results and its verdict."""

    __slots__ = ("healthy", "successes", "failures", "probing", "last")

    def __init__(self) -> None:
        self.healthy = True
        self.successes = 0
        self.failures = 0
        self.probing = False
        self.last = ""

    def record(self, ok: bool, check: HealthCheck) -> bool | None:
        """Count one probe; the new verdict when it flips, else None."""
        if ok:
            self.failures = 0
            self.successes += 1
            if not self.healthy and self.successes >= check.healthy_threshold:
                self.healthy = True
                return True
        else:
            self.successes = 0
            self.failures += 1
            if self.healthy and self.failures >= check.unhealthy_threshold:
                self.healthy = False
                return False
        return None


class ClusterProber:
    """The probes of one cluster: a task running rounds of one probe per endpoint, spread over the interval."""

    __slots__ = ("checker", "upstream", "key", "states", "task", "probes")

    def __init__(self, checker: HealthChecker, upstream: Upstream) -> None:
        self.checker = checker
        self.upstream = upstream
        self.key = upstream.key
        self.states: dict[Endpoint, EndpointState] = {}
        self.task: asyncio.Task[None] | None = None
        self.probes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"health checks of {self.key}")
        self.task.add_done_callback(self._ended)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for probe_task in list(self.probes):
            probe_task.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("health checks of %s stopped: %r", self.key, task.exception())
        self.checker.finished(self)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.upstream
        check = checked(upstream)
        # A random phase: clusters published together do not probe in step.
        start = loop.time() + (random.random() * check.interval if check is not None else 0.0)
        while check is not None:
            pools = upstream.pools
            self._forget_gone({pool.endpoint for pool in pools})
            count = len(pools)
            step = check.interval / count if count else check.interval
            batch = max(1, math.ceil(MIN_STEP / step)) if count else 0
            for first in range(0, count, batch or 1):
                await _sleep_until(loop, start + first * step)
                if checked(upstream) != check:
                    break  # the check changed or was dropped: start over with the new one at once
                for pool in pools[first:first + batch]:
                    await self._launch(pool.endpoint, check)
            else:
                start += check.interval
                await _sleep_until(loop, start)
            latest = checked(upstream)
            if latest != check:
                start = loop.time()
            check = latest

    async def _launch(self, endpoint: Endpoint, check: HealthCheck) -> None:
        state = self.states.get(endpoint)
        if state is None:
            state = self.states[endpoint] = EndpointState()
        if state.probing:
            return  # its previous probe is still waiting (a timeout longer than the interval)
        await self.checker.slots.acquire()
        state.probing = True
        task = asyncio.get_running_loop().create_task(self._probe(endpoint, state, check))
        self.probes.add(task)
        task.add_done_callback(self.probes.discard)

    async def _probe(self, endpoint: Endpoint, state: EndpointState, check: HealthCheck) -> None:
        upstream = self.upstream
        try:
            result, detail = await probe(endpoint, check=check, host=upstream.host_name, tls=upstream.tls,
                                         http2=speaks_http2(upstream.cluster))
        finally:
            state.probing = False
            self.checker.slots.release()
        self.checker.results[result] += 1
        if self.states.get(endpoint) is not state:
            return  # the endpoint left while it was probed
        state.last = f"{result}: {detail}" if detail else result
        verdict = state.record(result == OK, check)
        if verdict is None:
            return
        where = _address(endpoint)
        if verdict:
            log.info("endpoint %s of %s is healthy again: %d health checks passed", where, self.key,
                     state.successes)
        else:
            log.warning("endpoint %s of %s is unhealthy: %d health checks failed in a row (last: %s)", where,
                        self.key, state.failures, state.last)
        self.checker.verdicts.apply(self.key, {endpoint: verdict})

    def _forget_gone(self, present: set[Endpoint]) -> None:
        gone = [endpoint for endpoint in self.states if endpoint not in present]
        if not gone:
            return
        recovered = {}
        for endpoint in gone:
            if not self.states.pop(endpoint).healthy:
                recovered[endpoint] = True
        if recovered:
            self.checker.verdicts.apply(self.key, recovered)


def speaks_http2(cluster: Cluster) -> bool:
    """The cluster's pods are spoken to in HTTP/2 (as Upstream.update decides their pool class)."""
    return cluster.protocol == HTTP2 or (cluster.policy is not None and cluster.policy.protocol == HTTP2)


async def probe(endpoint: Endpoint, *, check: HealthCheck, host: bytes, tls: UpstreamTLS | None,
                http2: bool = False) -> tuple[str, str]:
    """One health check on a connection of its own: (result, detail). TLS when `tls` is given; the Host header
    (HTTP/2: ``:authority``) is the TLS server name then, else `host`. Only the status line (HTTP/2: the response
    HEADERS) is read. `http2`: the pod speaks HTTP/2 (h2c, or h2 that it must choose by ALPN over TLS)."""
    writer: asyncio.StreamWriter | None = None
    address, port = endpoint
    try:
        async with asyncio.timeout(check.timeout):
            try:
                reader, writer = await asyncio.open_connection(address, port)
            except OSError as error:
                return CONNECT_FAILURE, error.strerror or str(error)
            if tls is not None:
                if tls.context is None:
                    return TLS_FAILURE, tls.error
                try:
                    await writer.start_tls(tls.context, server_hostname=tls.server_name)
                except (OSError, asyncio.IncompleteReadError) as error:
                    return TLS_FAILURE, describe(error)
                mismatch = tls.check_peer(writer.get_extra_info("ssl_object"))
                if mismatch:
                    return TLS_FAILURE, mismatch
                host = tls.server_name.encode("ascii", "replace")
                if http2:
                    chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
                    if chosen != "h2":
                        return TLS_FAILURE, f"the pod chose {chosen or 'no protocol'} by ALPN, not h2"
            if http2:
                answer = await _h2_status(reader, writer, check.path, host, b"https" if tls is not None else b"http")
                if isinstance(answer, str):
                    return BAD_RESPONSE, answer
                return _judge(answer, check)
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n"
                         % (check.path, host, USER_AGENT))
            line = await reader.readuntil(b"\r\n")
    except TimeoutError:
        return TIMEOUT, f"no answer within {check.timeout:g} s"
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as error:
        return BAD_RESPONSE, f"no status line: {error!r}"
    finally:
        if writer is not None:
            writer.transport.abort()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return BAD_RESPONSE, f"not an HTTP/1.x status line: {line[:60]!r}"
    return _judge(int(parts[1]), check)


def _judge(status: int, check: HealthCheck) -> tuple[str, str]:
    expected = check.expected_statuses
    good = status in expected if expected else 200 <= status < 300  # no list given: any 2xx
    if good:
        return OK, ""
    return UNEXPECTED_STATUS, f"status {status}"


async def _h2_status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: bytes, authority: bytes,
                     scheme: bytes) -> int | str:
    """An HTTP/2 GET on a fresh connection (preface, SETTINGS both ways, one stream): the final :status, or why
    there is none. A pod that resets the GET (a gRPC server takes only POSTs of application/grpc) is asked again on
    the same connection as a gRPC call of the path without messages: its HTTP status says the pod serves gRPC
    (its grpc-status, UNIMPLEMENTED for an unknown method, is not judged). The caller's timeout bounds it."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    common = [(b":scheme", scheme), (b":authority", authority), (b":path", path), (b"user-agent", USER_AGENT)]
    conn.send_headers(stream_id, [(b":method", b"GET"), *common], end_stream=True)
    grpc_tried = False
    writer.write(conn.data_to_send())
    while True:
        data = await reader.read(65536)
        if not data:
            return "the pod closed the HTTP/2 connection without an answer"
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            return f"not HTTP/2: {error!r}"[:200]
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                for name, value in event.headers:
                    if name == b":status":
                        return int(value)
                return "a response without :status"
            if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                if grpc_tried:
                    return f"the pod reset the stream ({_code_name(event.error_code)})"
                grpc_tried = True
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, [(b":method", b"POST"), *common, (b"content-type", b"application/grpc"),
                                              (b"te", b"trailers")], end_stream=True)
            elif isinstance(event, h2.events.ConnectionTerminated):
                return f"GOAWAY ({_code_name(event.error_code)})"
        pending = conn.data_to_send()
        if pending:
            writer.write(pending)  # the SETTINGS acknowledgement, PING answers, the gRPC retry


def _code_name(code: object) -> str:
    """An HTTP/2 error code by its name (h2's ErrorCodes), or its number when h2 does not know it."""
    return str(getattr(code, "name", code))


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _address(endpoint: Endpoint) -> str:
    address, port = endpoint
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
