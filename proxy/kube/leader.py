"""Leader election through a coordination.k8s.io/v1 Lease, so only one replica writes Ingress status.

The shape of client-go's leaderelection: every `retry_period` each candidate reads the Lease;
the holder renews it (PUT with the read resourceVersion, so a concurrent writer gets 409 and
loses); a candidate takes it over only after seeing the same record unchanged for a whole
`lease_duration` measured on its own monotonic clock (no trust in other nodes' wall clocks).
A leader that cannot renew for `renew_deadline` steps down before anyone else can take over.
On a clean stop the holder releases the Lease so a successor starts at once.

Times are written as metav1.MicroTime: exactly six fractional digits and a zone; the API server
rejects a timestamp without them (a datetime whose microsecond is 0 serialises that way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kubernetes_asyncio.client import ApiClient, CoordinationV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from proxy.kube.client import POD_NAMESPACE, ApiCall, json_body
from proxy.settings import Settings

log = logging.getLogger("pyngress.leader")

# ingress-nginx's timing (--election-ttl 30s; renew deadline ttl/2, retry period ttl/4): a dead
# leader is replaced within ~30 s, a live one renews every 7.5 s. Only status and Events wait on
# the leader, never traffic, so a slow takeover costs little and saves API server writes.
ELECTION_TTL = 30.0
LEASE_DURATION = ELECTION_TTL
RENEW_DEADLINE = ELECTION_TTL / 2
RETRY_PERIOD = ELECTION_TTL / 4
REQUEST_TIMEOUT = 5.0

API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("coordination.k8s.io", "leases", "get", POD_NAMESPACE),
    ApiCall("coordination.k8s.io", "leases", "create", POD_NAMESPACE),
    ApiCall("coordination.k8s.io", "leases", "update", POD_NAMESPACE),
)


def micro_time(moment: float | None = None) -> str:
    """A metav1.MicroTime string: UTC, six fractional digits, always."""
    stamp = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ElectionTiming(NamedTuple):
    lease_duration: float
    renew_deadline: float
    retry_period: float


def election_timing(ttl: float) -> ElectionTiming:
    """LeaderElector timing from one TTL, as ingress-nginx derives it: lease ttl, renew ttl/2, retry ttl/4."""
    if not ttl > 0:
        raise ValueError(f"election TTL must be positive, got {ttl}")
    return ElectionTiming(lease_duration=ttl, renew_deadline=ttl / 2, retry_period=ttl / 4)


def default_identity(settings: Settings) -> str:
    """The pod name when known (unique among replicas), else host name plus a random suffix."""
    return settings.pod_name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LeaderElector:
    """Campaigns for one Lease; `is_leader` says whether this process may write now."""

    def __init__(self, api_client: ApiClient, settings: Settings, *, identity: str | None = None,
                 lease_duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
                 retry_period: float = RETRY_PERIOD, on_change: Callable[[bool], None] | None = None) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.api = CoordinationV1Api(api_client)
        self.name = settings.election_id
        self.namespace = settings.pod_namespace
        self.identity = identity or default_identity(settings)
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_change = on_change
        # The API stores whole seconds; never 0, which would let anyone take over at once.
        self._duration_seconds = max(1, round(lease_duration))
        self.transitions_seen = 0
        self._leading = False
        self._leading_event = asyncio.Event()
        self._last_renew = 0.0  # monotonic time of our last successful acquire or renew
        # The last record we saw from the API server and when (monotonic) it last changed.
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        """True while we hold a Lease renewed within `renew_deadline` (checked against the clock, not a flag)."""
        return self._leading and time.monotonic() - self._last_renew < self.renew_deadline

    async def wait_leading(self) -> None:
        await self._leading_event.wait()

    async def run(self, *, release_on_exit: bool = True) -> None:
        """Campaign and renew until cancelled; release the Lease on the way out if we hold it."""
        try:
            while True:
                try:
                    # (asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that comes as the
                    # round completes, and this loop would then outlive its cancellation.)
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        acquired = await self.try_acquire_or_renew()
                except (TimeoutError, ApiException, OSError, ValueError) as err:
                    log.warning("leader election: cannot reach Lease %s/%s: %s", self.namespace, self.name, err)
                    acquired = False
                except Exception as err:  # noqa: BLE001  aiohttp errors and the like: never fatal
                    log.warning("leader election: Lease %s/%s: %s: %s", self.namespace, self.name,
                                type(err).__name__, err)
                    acquired = False
                self._set_leading(acquired or self.is_leader)
                await asyncio.sleep(self.retry_period)
        finally:
            was_leading = self._leading
            self._set_leading(False)
            if release_on_exit and was_leading:
                await asyncio.shield(self._release())

    async def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease after it."""
        now = time.monotonic()
        try:
            lease = await self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False,
                                                         _request_timeout=REQUEST_TIMEOUT)
            body = await _json(lease)
        except _NotFound:
            return await self._create()
        spec = body.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("acquireTime"), spec.get("leaseDurationSeconds"),
                  spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # someone else holds a lease that has not run out (as far as our clock can tell)
        renewing = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        stamp = micro_time()
        transitions_after = transitions if renewing else transitions + 1
        new_spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._duration_seconds,
            "renewTime": stamp,
            "acquireTime": (spec.get("acquireTime") or stamp) if renewing else stamp,
            "leaseTransitions": transitions_after,
        }
        if not renewing:
            log.info("leader election: taking over Lease %s/%s from %r", self.namespace, self.name, holder or None)
        replaced = {**body, "spec": {**spec, **new_spec}}
        try:
            response = await self.api.replace_namespaced_lease(self.name, self.namespace, json_body(replaced),
                                                               _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            await _json(response)
        except _Conflict:
            return False  # someone else wrote first: they win this round
        self._last_renew = time.monotonic()
        self.transitions_seen = transitions_after
        return True

    async def _create(self) -> bool:
        stamp = micro_time()
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration_seconds,
                         "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}
        try:
            response = await self.api.create_namespaced_lease(self.namespace, json_body(body), _preload_content=False,
                                                              _request_timeout=REQUEST_TIMEOUT)
            await _json(response)
        except _Conflict:
            return False
        log.info("leader election: created Lease %s/%s", self.namespace, self.name)
        self._last_renew = time.monotonic()
        return True

    async def _release(self) -> None:
        """Hand the Lease back (empty holder) so a successor need not wait for it to expire."""
        try:
            response = await self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False,
                                                            _request_timeout=REQUEST_TIMEOUT)
            body = await _json(response)
            spec = body.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            body["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()}
            response = await self.api.replace_namespaced_lease(self.name, self.namespace, json_body(body),
                                                               _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            await _json(response)
            log.info("leader election: released Lease %s/%s", self.namespace, self.name)
        except Exception as err:  # noqa: BLE001  best effort: the Lease expires anyway
            log.warning("leader election: could not release Lease %s/%s: %s: %s", self.namespace, self.name,
                        type(err).__name__, err)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self._leading_event.set()
            log.warning("leader election: %s is now the leader (Lease %s/%s)", self.identity, self.namespace, self.name)
        else:
            self._leading_event.clear()
            log.warning("leader election: %s stopped leading", self.identity)
        if self.on_change is not None:
            self.on_change(leading)


class _NotFound(Exception):
    pass


class _Conflict(Exception):
    pass


async def _json(response: Any) -> dict[str, Any]:
    """The body of a raw (_preload_content=False) response; 404 and 409 become our own exceptions."""
    try:
        data = await response.read()
        status = response.status
    finally:
        response.release()
    if status == 404:
        raise _NotFound()
    if status == 409:
        raise _Conflict()
    if not 200 <= status < 300:
        raise ApiException(status=status, reason=data.decode(errors="replace")[:200])
    return json.loads(data)
