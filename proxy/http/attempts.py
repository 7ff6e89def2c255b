"""The attempts of one request under a traffic policy: which endpoint each goes to, whether a failed one is
tried again, and the cluster counts (circuit breaker, retry budget) the request holds meanwhile.

Only requests whose route retries or delays them (`Route.policy`), or whose cluster has a circuit breaker,
cookie affinity or a hashing balancer (`Upstream.guarded`), get an `Attempts`; the others take
`Exchange.start` and pay nothing for any of this (passive health and balancers that need no request key
work there too: outcomes are reported to `Upstream.report` on both paths). In order:

- a fault delay (a timer; a client that leaves meanwhile cancels it) and an abort decided with it;
- circuit breaker: over max_parallel_requests the request gets 503 at once (``x-pyngress-overloaded``);
- the endpoint: the affinity cookie's pod while it is available, else the balancer's pick (given the
  request's key when it hashes);
- a connection: an idle one; else a new one unless the cluster is at max_connections, where the request
  takes an idle connection of another endpoint, or waits (at most max_pending_requests requests, each at
  most upstream_connect_timeout) for one to be freed, or gets 503; dialing counts as pending too;
- the answer: a status the retry policy retries is dropped before anything reaches the client (the
  request is replayed from the exchange's replay buffer, so bodies over REPLAY_LIMIT are not retried once
  sent), and the affinity cookie is set when the pod that answered is not the one the cookie named;
- a failure (connect failure, reset, timeout, retried status): reported to passive health, then retried to
  another endpoint if the policy allows it (trigger, idempotent method, attempts left, the budget: retries
  in progress at most max(min_retries, budget x active requests of the cluster), and the breaker's
  max_parallel_retries), after a fully jittered exponential backoff (a timer). Without a retry policy,
  connect failures are retried at once on the next endpoints (--upstream-retries), as on the plain path.

Trigger words (RetryPolicy.retry_on, Envoy's): ``connect-failure``; ``reset`` (the connection closed or
broke before a complete answer head, or an attempt timed out: the per-try timeout, the route's
backendRequest timeout, upstream_read_timeout); ``5xx`` (any 5xx answer, and everything ``reset`` and
``connect-failure`` cover); ``gateway-error`` (502, 503, 504, and the same); plus listed status codes.
nginx's words for ingress-nginx's proxy-next-upstream: ``error`` (connect failures and resets) and
``timeout`` (an attempt that timed out once connected). The route's request timeout is never retried;
no retry starts after the policy's `window` (proxy-next-upstream-timeout), counted from the request's
start, and with `per_endpoint` a request makes at most one attempt per endpoint of the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from proxy.http.affinity import cookie_value, request_key, set_cookie
from proxy.http.downstream import BLOCK_CONNECT
from proxy.routing.policies import (
    RETRY_5XX,
    RETRY_CONNECT_FAILURE,
    RETRY_ERROR,
    RETRY_GATEWAY_ERROR,
    RETRY_RESET,
    RETRY_TIMEOUT,
    RetryPolicy,
)
from proxy.upstream.cluster import (
    MAX_CONNECTIONS,
    MAX_PARALLEL_REQUESTS,
    MAX_PARALLEL_RETRIES,
    MAX_PENDING_REQUESTS,
    Waiter,
)
from proxy.upstream.errors import (
    ConnectError,
    NoEndpoints,
    Overloaded,
    ProtocolError,
    RequestTimeout,
    RetryableStatus,
    UpstreamClosed,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange
    from proxy.http.ratelimit import ClientLimiter
    from proxy.routing.request import Request, Response
    from proxy.upstream.cluster import Upstream
    from proxy.upstream.pool import EndpointPool

logger = logging.getLogger("pyngress.proxy")

_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
_GATEWAY_STATUSES = frozenset((502, 503, 504))

# Retry reasons (the metrics' `reason` label).
CONNECT_FAILURE = "connect-failure"
RESET = "reset"
TIMEOUT = "timeout"
STATUS = "status"

_TRIGGERS = {
    CONNECT_FAILURE: frozenset((RETRY_CONNECT_FAILURE, RETRY_RESET, RETRY_5XX, RETRY_GATEWAY_ERROR, RETRY_ERROR)),
    RESET: frozenset((RETRY_RESET, RETRY_5XX, RETRY_GATEWAY_ERROR, RETRY_ERROR)),
    TIMEOUT: frozenset((RETRY_RESET, RETRY_5XX, RETRY_GATEWAY_ERROR, RETRY_TIMEOUT)),
}

_random = random.random
_clock = time.perf_counter


def failure_reason(error: UpstreamError) -> str:
    """The retry trigger an error is ("" when no retry can follow it)."""
    if isinstance(error, ConnectError):
        return CONNECT_FAILURE
    if isinstance(error, (UpstreamClosed, ProtocolError)):
        return RESET
    if isinstance(error, UpstreamTimeout) and not isinstance(error, RequestTimeout):
        return TIMEOUT
    if isinstance(error, RetryableStatus):
        return STATUS
    return ""


def retries_status(retry: RetryPolicy, status: int) -> bool:
    """Whether `retry` retries an answer with `status`."""
    if status >= 500:
        retry_on = retry.retry_on
        if RETRY_5XX in retry_on or (status in _GATEWAY_STATUSES and RETRY_GATEWAY_ERROR in retry_on):
            return True
    return status in retry.status_codes


def backoff(retry: RetryPolicy, number: int) -> float:
    """Seconds before retry `number` (1, 2, ...): a uniform draw below base x 2^(number-1), at most max (full
    jitter: retries of many requests spread out instead of arriving together)."""
    upper = min(retry.backoff_max, retry.backoff_base * (1 << min(number - 1, 30)))
    return _random() * upper if upper > 0 else 0.0


class Attempts:
    """The policy side of one exchange (see the module docstring); also a response filter of its exchange
    (it runs first: it may drop the answer)."""

    __slots__ = ("ex", "retry", "upstream", "pool", "key", "token", "counted", "retrying", "delay", "abort",
                 "waiter", "held")
    order = -100

    def __init__(self, ex: Exchange, retry: RetryPolicy | None, *, delay: float = 0.0, abort: int = 0,
                 held: ClientLimiter | None = None) -> None:
        self.ex = ex
        self.retry = retry
        self.upstream: Upstream | None = None
        self.pool: EndpointPool | None = None  # of the current attempt
        self.key: bytes | None = None  # what a hashing balancer hashes
        self.token = b""  # the affinity cookie's value in the request
        self.counted = False  # in upstream.active
        self.retrying = False  # in upstream.retrying
        self.delay = delay  # a fault delay before the first attempt (seconds)
        self.abort = abort  # a fault abort's status, answered after the delay
        self.waiter: Waiter | None = None
        self.held = held  # a limit-connections slot of the client, given back by done()

    @property
    def replays(self) -> bool:
        """Whether the request's bytes are kept for another attempt (the retry policy may resend this method)."""
        retry = self.retry
        return retry is not None and (not retry.idempotent_only or self.ex.method in _IDEMPOTENT)

    def _hold(self) -> None:
        """Waiting before an attempt (a delay, a backoff, a queue): stop reading a body still coming, which would
        pile up meanwhile. A request already read keeps its connection read, so a client that leaves is seen
        (see ClientConnection.eof_received) and its timer cancelled."""
        ex = self.ex
        if not ex.req_done and ex.has_body:
            ex.client.block(BLOCK_CONNECT)

    # ------------------------------------------------------------------ the first attempt

    def begin(self, upstream: Upstream, head: list[bytes], *, retries: int) -> None:
        """Exchange.start for a request under a policy (`retries`: --upstream-retries, for connect failures
        when there is no retry policy). (The first attempt is started here rather than by a call to
        `_first`: this path runs per request, and a Python call costs ~1% of one.)"""
        ex = self.ex
        ex.upstream = self.upstream = upstream
        if ex.up_out:
            head.extend(ex.up_out)
        ex.up_out = head
        ex.attempts = 1
        ex.attempt_deadline = 0.0  # (read by the clock tick when the route has timeouts, before _first sets it)
        retry = self.retry
        if retry is not None:
            ex.max_attempts = retry.num_retries + 1
            if retry.per_endpoint and ex.max_attempts > len(upstream.pools):
                ex.max_attempts = len(upstream.pools) or 1
        else:
            ex.max_attempts = min(retries, len(upstream.pools)) if retries > 1 else 1
        if retry is not None or upstream.affinity is not None:
            ex.response_filters = (self, *ex.response_filters)
        if self.delay > 0:
            self._hold()
            ex.connecting = asyncio.get_running_loop().call_later(self.delay, self._delayed)
            return
        breaker = upstream.breaker
        if breaker is not None and breaker.max_parallel_requests and upstream.active >= breaker.max_parallel_requests:
            self.overloaded(MAX_PARALLEL_REQUESTS)
            return
        upstream.active += 1
        self.counted = True
        ex.sent_at = _clock()
        if ex.timeouts is not None:
            self._deadline()
        pool = self._pick(upstream) if upstream.affinity is not None or upstream.balancer.needs_key else \
            upstream.balancer.pick()
        if pool is None:
            ex.fail(NoEndpoints(f"no ready endpoints for {upstream.key}"))
            return
        self.pool = pool
        conn = pool.acquire()
        if conn is not None:
            ex.attach(conn, pool)
        else:
            self.connect(pool)

    def _delayed(self) -> None:
        ex = self.ex
        ex.connecting = None
        if ex.finished:
            return
        if self.abort:
            route = ex.route_stats
            if route is not None:
                route.faults_aborted += 1
            ex.client.send_error(ex, self.abort, None, detail="fault injected", reason="fault-abort")
            return
        self._first()
        if ex.conn is not None and not ex.finished:
            ex.client.unblock(BLOCK_CONNECT)
            ex.flush_upstream()

    def _first(self) -> None:
        """The first attempt after a fault delay (see `begin`)."""
        ex = self.ex
        upstream = self.upstream
        assert upstream is not None
        breaker = upstream.breaker
        if breaker is not None and breaker.max_parallel_requests and upstream.active >= breaker.max_parallel_requests:
            self.overloaded(MAX_PARALLEL_REQUESTS)
            return
        upstream.active += 1
        self.counted = True
        ex.sent_at = _clock()
        self._deadline()
        pool = self._pick(upstream)
        if pool is None:
            ex.fail(NoEndpoints(f"no ready endpoints for {upstream.key}"))
            return
        self.connect(pool)

    def _pick(self, upstream: Upstream) -> EndpointPool | None:
        """The first attempt's endpoint: the affinity cookie's while it is available, else the balancer's pick
        (with the request's key when the balancer hashes)."""
        policy = upstream.policy
        if upstream.balancer.needs_key and policy is not None:
            self.key = request_key(self.ex, policy.load_balancer)
        affinity = upstream.affinity
        if affinity is not None:
            token = cookie_value(self.ex, affinity.cookie)
            if token:
                self.token = token
                pool = upstream.tokens.get(token)
                if pool is not None:
                    return pool
        return upstream.balancer.pick(None, self.key)

    def _deadline(self) -> None:
        """The current attempt's deadline: the route's backendRequest timeout or the per-try timeout, the shorter."""
        ex = self.ex
        timeouts = ex.timeouts
        if timeouts is None:
            return  # (set by the pipeline whenever a per-try timeout exists)
        limit = timeouts.backend_request or 0.0
        retry = self.retry
        per_try = retry.per_try_timeout if retry is not None else None
        if per_try:
            limit = min(limit, per_try) if limit else per_try
        ex.attempt_deadline = ex.client.server.now + limit if limit else 0.0

    # ------------------------------------------------------------------ connections (circuit breaker)

    def connect(self, pool: EndpointPool) -> bool:
        """Start the attempt on `pool`: True when it has its connection now (the caller flushes what waits)."""
        ex = self.ex
        upstream = self.upstream
        assert upstream is not None
        self.pool = pool
        conn = pool.acquire()
        if conn is not None:
            ex.attach(conn, pool)
            return True
        breaker = upstream.breaker
        if breaker is not None:
            pending_limit = breaker.max_pending_requests
            if breaker.max_connections and upstream.open_connections() >= breaker.max_connections:
                other = upstream.idle_pool(pool)
                conn = other.acquire() if other is not None else None
                if conn is not None and other is not None:
                    self.pool = other
                    ex.attach(conn, other)
                    return True
                if pending_limit and upstream.pending < pending_limit:
                    self._wait()
                else:
                    self.overloaded(MAX_PENDING_REQUESTS if pending_limit else MAX_CONNECTIONS)
                return False
            if pending_limit and upstream.pending >= pending_limit:
                self.overloaded(MAX_PENDING_REQUESTS)
                return False
        ex.client.block(BLOCK_CONNECT)
        ex.connecting = asyncio.get_running_loop().create_task(self._dial(pool))
        return False

    async def _dial(self, pool: EndpointPool) -> None:
        ex = self.ex
        upstream = self.upstream
        assert upstream is not None
        upstream.pending += 1
        upstream.dialing += 1
        try:
            try:
                conn = await pool.connect()
            finally:
                upstream.pending -= 1
                upstream.dialing -= 1
        except ConnectError as exc:
            ex.connecting = None
            if not ex.finished:
                logger.debug("request %s: %s", ex.request_id.decode("latin-1"), exc)
                ex.fail(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: answer and log it rather than leaving the client hanging
            logger.exception("request %s: unexpected error while connecting", ex.request_id.decode("latin-1"))
            ex.connecting = None
            error = ConnectError(f"unexpected error: {exc!r}")
            error.__cause__ = exc
            ex.fail(error)
            return
        ex.connecting = None
        if ex.finished:
            pool.release(conn)
            return
        ex.attach(conn, pool)
        ex.client.unblock(BLOCK_CONNECT)
        ex.flush_upstream()

    def _wait(self) -> None:
        """Queue for a connection of a cluster at max_connections (bounded by max_pending_requests and by
        upstream_connect_timeout)."""
        ex = self.ex
        upstream = self.upstream
        assert upstream is not None
        upstream.pending += 1
        self.waiter = waiter = Waiter(self._woken)
        upstream.waiters.append(waiter)
        self._hold()
        timeout = ex.client.server.connect_timeout
        ex.connecting = asyncio.get_running_loop().call_later(timeout, self._waited_too_long)

    def _stop_waiting(self) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        self.waiter = None
        upstream = self.upstream
        assert upstream is not None
        upstream.pending -= 1
        try:
            upstream.waiters.remove(waiter)
        except ValueError:
            pass  # (Upstream.wake pops it)

    def _woken(self) -> bool:
        """A connection may be free: take it; True when this request is done waiting."""
        ex = self.ex
        upstream = self.upstream
        pool = self.pool
        assert upstream is not None and pool is not None
        if ex.finished:
            self.waiter = None
            upstream.pending -= 1
            return True
        breaker = upstream.breaker
        idle = upstream.idle_pool(pool)
        if idle is None and breaker is not None and upstream.open_connections() >= breaker.max_connections:
            return False
        self.waiter = None
        upstream.pending -= 1
        timer = ex.connecting
        if timer is not None:
            ex.connecting = None
            timer.cancel()
        if self.connect(idle or pool):
            ex.client.unblock(BLOCK_CONNECT)
            ex.flush_upstream()
        return True

    def _waited_too_long(self) -> None:
        ex = self.ex
        ex.connecting = None
        self._stop_waiting()
        if not ex.finished:
            self.overloaded(MAX_CONNECTIONS)

    def overloaded(self, limit: str) -> None:
        """Over a circuit-breaker limit: 503 at once, saying which."""
        upstream = self.upstream
        assert upstream is not None
        upstream.counters.overloaded[limit] += 1
        self.ex.fail(Overloaded(limit))

    # ------------------------------------------------------------------ answers and failures

    def on_response(self, request: Request, response: Response) -> None:
        """The response phase (first of the rule's response filters): drop an answer to retry, set the cookie."""
        status = response.status
        retry = self.retry
        upstream = self.upstream
        if (retry is not None and retries_status(retry, status) and upstream is not None and self.pool is not None
                and self.may_retry(STATUS)):
            raise RetryableStatus(status)
        if upstream is not None:
            affinity = upstream.affinity
            pool = self.ex.pool
            if affinity is not None and pool is not None and pool.token != self.token:
                response.add_header(b"Set-Cookie", set_cookie(affinity, pool.token))

    def failed(self, error: UpstreamError) -> bool:
        """An attempt failed (Exchange.fail, after dropping its connection): report it to passive health and
        retry if the policy allows; True when another attempt is under way."""
        ex = self.ex
        upstream, pool = self.upstream, self.pool
        if upstream is None or pool is None:
            return False
        reason = failure_reason(error)
        if reason == STATUS:
            assert isinstance(error, RetryableStatus)
            upstream.report(pool, error.answer, ex.upstream_time)
            ex.resp_head_done = False  # the answer was dropped: nothing reached the client
            ex.status = 0
            ex.upstream_time = -1.0
            self.schedule()  # decided (and counted) in on_response
            return True
        if not reason:
            return False
        upstream.report(pool, 0)
        if ex.resp_head_done or not self.may_retry(reason):
            return False
        self.schedule()
        return True

    def may_retry(self, reason: str) -> bool:
        """Whether another attempt may follow one that failed for `reason`; when it may, the retry is counted
        (in the cluster's retries in progress, and in its metrics)."""
        ex = self.ex
        upstream = self.upstream
        assert upstream is not None
        retry = self.retry
        counters = upstream.counters
        if retry is None:
            if reason != CONNECT_FAILURE or ex.attempts >= ex.max_attempts:
                return False
            counters.retries[reason] += 1
            return True
        if reason != STATUS and not (_TRIGGERS[reason] & retry.retry_on):
            return False
        if ex.attempts >= ex.max_attempts:
            return False
        if retry.window and _clock() - ex.started > retry.window:
            return False
        if reason != CONNECT_FAILURE and (  # the request went out: it must be replayable
                ex.replay is None or (retry.idempotent_only and ex.method not in _IDEMPOTENT)):
            return False
        if not self.retrying:
            breaker = upstream.breaker
            if breaker is not None and breaker.max_parallel_retries and \
                    upstream.retrying >= breaker.max_parallel_retries:
                counters.overloaded[MAX_PARALLEL_RETRIES] += 1
                return False
            if upstream.retrying >= max(retry.min_retries, retry.budget * upstream.active_requests()):
                counters.budget_exhausted += 1
                return False
            self.retrying = True
            upstream.retrying += 1
        counters.retries[reason] += 1
        return True

    def schedule(self) -> None:
        """Start the next attempt after the backoff (at once without a retry policy)."""
        ex = self.ex
        ex.retries += 1
        ex.attempts += 1
        replay = ex.replay
        if replay is not None:
            ex.replay = None
            ex.up_out[:0] = replay
        ex.attempt_deadline = 0.0
        retry = self.retry
        delay = backoff(retry, ex.retries) if retry is not None else 0.0
        if delay <= 0:
            self._again()
            return
        self._hold()
        ex.connecting = asyncio.get_running_loop().call_later(delay, self._again)

    def _again(self) -> None:
        ex = self.ex
        ex.connecting = None
        if ex.finished:
            return
        upstream = self.upstream
        assert upstream is not None
        pool = upstream.balancer.pick(self.pool, self.key)
        if pool is None:
            ex.fail(NoEndpoints(f"no ready endpoints for {upstream.key}"))
            return
        self._deadline()
        ex.sent_at = _clock()
        if self.connect(pool):
            ex.client.unblock(BLOCK_CONNECT)
            ex.flush_upstream()

    def done(self) -> None:
        """The exchange is over: give back the cluster counts (and client slot) it holds (Exchange.account)."""
        held = self.held
        if held is not None:
            self.held = None
            held.release(self.ex.client_ip)
        upstream = self.upstream
        if upstream is None:
            return
        if self.counted:
            self.counted = False
            upstream.active -= 1
        if self.retrying:
            self.retrying = False
            upstream.retrying -= 1
        if self.waiter is not None:
            self._stop_waiting()
        if upstream.waiters:
            upstream.wake()


__all__ = ["Attempts", "backoff", "failure_reason", "retries_status"]
