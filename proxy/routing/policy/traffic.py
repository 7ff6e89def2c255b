"""Our `BackendTrafficPolicy` (pyngress.dev/v1alpha1) → its targets and one `PolicySpec` layer.

Field names are Envoy Gateway's where the concept is the same (`loadBalancer`, `retry`,
`circuitBreaker`, `healthCheck.passive` / `.active`, `faultInjection`, `rateLimit.local`,
`timeout.http.requestTimeout`), plus the Gateway API's `sessionPersistence`. Each section is read on
its own: a section that cannot be served is dropped with a warning naming the policy and the field,
the others still apply. Only an object that cannot be read at all (no spec, no usable targetRefs) is
Invalid as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.objects import Key, Warning
from proxy.routing.fields import Malformed, mapping, require_object, sequence, text
from proxy.routing.gateway.meta import age, generation
from proxy.routing.model import Timeouts
from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_COOKIE,
    HASH_HEADER,
    HASH_SOURCE_IP,
    HASH_URI,
    LEAST_REQUEST,
    RANDOM,
    RETRY_5XX,
    RETRY_CONNECT_FAILURE,
    RETRY_GATEWAY_ERROR,
    RETRY_RESET,
    ROUND_ROBIN,
    CircuitBreaker,
    Ejection,
    FaultInjection,
    HealthCheck,
    LoadBalancer,
    RateLimit,
    RetryPolicy,
)
from proxy.routing.policy.reading import Warn, check_fields, duration, flag, fraction, integer, token
from proxy.routing.policy.sessions import read_session_persistence
from proxy.routing.policy.spec import EMPTY, PolicySpec
from proxy.routing.policy.targets import (
    GATEWAY,
    GATEWAY_GROUP,
    HTTP_ROUTE,
    INGRESS,
    NETWORKING_GROUP,
    SERVICE,
    TargetRef,
    read_targets,
)

KIND = "BackendTrafficPolicy"
GROUP = "pyngress.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# (group, kind) -> whether a sectionName may narrow it (a Service port's name, an HTTPRoute rule's name, a
# Gateway listener's).
TARGET_KINDS: dict[tuple[str, str], bool] = {
    ("", SERVICE): True,
    (GATEWAY_GROUP, HTTP_ROUTE): True,
    (GATEWAY_GROUP, GATEWAY): True,
    (NETWORKING_GROUP, INGRESS): False,
}

_SPEC_FIELDS = ("targetRefs", "loadBalancer", "sessionPersistence", "retry", "circuitBreaker", "healthCheck",
                "faultInjection", "rateLimit", "timeout")
_BALANCERS = {"RoundRobin": ROUND_ROBIN, "LeastRequest": LEAST_REQUEST, "Random": RANDOM,
              "ConsistentHash": CONSISTENT_HASH}
_HASH_ON = {"SourceIP": HASH_SOURCE_IP, "Header": HASH_HEADER, "Cookie": HASH_COOKIE, "URI": HASH_URI}
_TRIGGERS = {"connect-failure": RETRY_CONNECT_FAILURE, "reset": RETRY_RESET, "5xx": RETRY_5XX,
             "gateway-error": RETRY_GATEWAY_ERROR, "retriable-status-codes": ""}
# retryOn when a retry section does not say: what is always safe to retry, and 503 (Envoy Gateway's code).
DEFAULT_TRIGGERS = frozenset({RETRY_CONNECT_FAILURE, RETRY_RESET})
DEFAULT_STATUS_CODES = frozenset({503})
_UNITS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0, "Day": 86400.0}
_ANY_CLIENT = frozenset({"0.0.0.0/0", "::/0"})


@dataclass(slots=True)
class TrafficPolicy:
    """What one BackendTrafficPolicy object says, judged without any other object."""

    key: Key
    obj: Any
    generation: int
    age: float
    targets: tuple[TargetRef, ...] = ()
    spec: PolicySpec = EMPTY
    problem: str = ""  # set: Invalid as a whole
    warnings: list[Warning] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(Warning(KIND, self.key[0], self.key[1], message))

    @property
    def order(self) -> tuple[float, str, str]:
        """Who wins a target two policies claim: the oldest, then namespace/name (GEP-713)."""
        return (self.age, self.key[0], self.key[1])


def read_traffic_policy(key: Key, obj: Any) -> TrafficPolicy:
    """Judge one BackendTrafficPolicy; never raises (a broken object is a TrafficPolicy with `problem`)."""
    policy = TrafficPolicy(key, obj, generation(obj), age(obj))
    try:
        body = mapping(require_object(obj, KIND), "spec", "", required=True)
        policy.targets = read_targets(body, key[0], kinds=TARGET_KINDS)
    except Malformed as error:
        policy.problem = str(error)
        policy.warn(f"not accepted: {error}")
        return policy
    for target in policy.targets:
        if target.problem:
            policy.warn(f"{target.problem}; that target is ignored")
    check_fields(body, _SPEC_FIELDS, "spec.", policy.warn)
    sections: dict[str, Any] = {}
    for name, reader, into in _SECTIONS:
        value = body.get(name)
        if value is None:
            continue
        where = f"spec.{name}."
        try:
            read = reader(require_object(value, where[:-1]), where, policy.warn)
        except Malformed as error:
            policy.warn(f"{error}; spec.{name} ignored")
            continue
        except Exception as error:  # noqa: BLE001  (a bug must cost one section, never the build)
            policy.warn(f"spec.{name} skipped: {type(error).__name__}: {error}")
            continue
        if isinstance(read, dict):
            sections.update(read)
        elif read is not None:
            sections[into] = read
    policy.spec = PolicySpec(**sections) if sections else EMPTY
    return policy


# ---------------------------------------------------------------------- sections

def _load_balancer(body: dict[str, Any], where: str, warn: Warn) -> LoadBalancer:
    check_fields(body, ("type", "consistentHash"), where, warn)
    kind = text(body, "type", where, required=True)
    if kind not in _BALANCERS:
        raise Malformed(f"{where}type {kind!r:.30} is not RoundRobin, LeastRequest, Random or ConsistentHash")
    hashing = mapping(body, "consistentHash", where)
    if kind != "ConsistentHash":
        if hashing:
            warn(f"{where}consistentHash is only read with type ConsistentHash; ignored")
        return LoadBalancer(_BALANCERS[kind])
    at = f"{where}consistentHash."
    if not hashing:
        raise Malformed(f"{at[:-1]} is required with type ConsistentHash")
    check_fields(hashing, ("type", "header", "cookie"), at, warn)
    on = text(hashing, "type", at, required=True)
    if on not in _HASH_ON:
        raise Malformed(f"{at}type {on!r:.30} is not SourceIP, Header, Cookie or URI")
    key = b""
    if on in ("Header", "Cookie"):
        part = on.lower()
        named = mapping(hashing, part, at, required=True)
        check_fields(named, ("name",), f"{at}{part}.", warn)
        name = token(named, "name", f"{at}{part}.")
        key = name.lower().encode() if on == "Header" else name.encode()
    return LoadBalancer(CONSISTENT_HASH, _HASH_ON[on], key)


def _session_persistence(body: dict[str, Any], where: str, warn: Warn) -> dict[str, Any]:
    return {"affinity": read_session_persistence(body, where, warn)}


def _retry(body: dict[str, Any], where: str, warn: Warn) -> RetryPolicy:
    check_fields(body, ("numRetries", "retryOn", "perRetry", "budget", "idempotentOnly"), where, warn)
    defaults = RetryPolicy()
    retries = integer(body, "numRetries", where, default=defaults.num_retries, maximum=1000)
    triggers, codes = DEFAULT_TRIGGERS, DEFAULT_STATUS_CODES
    retry_on = body.get("retryOn")
    if retry_on is not None:
        at = f"{where}retryOn."
        retry_on = require_object(retry_on, at[:-1])
        check_fields(retry_on, ("triggers", "httpStatusCodes"), at, warn)
        found = set()
        for index, trigger in enumerate(sequence(retry_on, "triggers", at)):
            if not isinstance(trigger, str) or trigger not in _TRIGGERS:
                warn(f"{at}triggers[{index}] {trigger!r:.30} is not supported; ignored")
            elif _TRIGGERS[trigger]:
                found.add(_TRIGGERS[trigger])
        statuses = set()
        for index, code in enumerate(sequence(retry_on, "httpStatusCodes", at)):
            if type(code) is not int or not 100 <= code <= 599:
                raise Malformed(f"{at}httpStatusCodes[{index}] must be a status code, got {code!r:.20}")
            statuses.add(code)
        triggers, codes = frozenset(found), frozenset(statuses)
    per_try = None
    base, most = defaults.backoff_base, defaults.backoff_max
    per_retry = mapping(body, "perRetry", where)
    if per_retry:
        at = f"{where}perRetry."
        check_fields(per_retry, ("timeout", "backOff"), at, warn)
        per_try = duration(per_retry, "timeout", at, default=None)
        if per_try == 0:
            raise Malformed(f"{at}timeout must be longer than 0s")
        back_off = mapping(per_retry, "backOff", at)
        if back_off:
            at = f"{at}backOff."
            check_fields(back_off, ("baseInterval", "maxInterval"), at, warn)
            base = duration(back_off, "baseInterval", at, default=base) or 0.0
            most = duration(back_off, "maxInterval", at, default=None) or 10 * base
            if most < base:
                raise Malformed(f"{at}maxInterval must not be shorter than baseInterval")
    budget, floor = defaults.budget, defaults.min_retries
    spend = mapping(body, "budget", where)
    if spend:
        at = f"{where}budget."
        check_fields(spend, ("percent", "minRetryConcurrency"), at, warn)
        budget = fraction(spend, "percent", at, default=budget)
        floor = integer(spend, "minRetryConcurrency", at, default=floor, maximum=100_000)
    return RetryPolicy(num_retries=retries, retry_on=triggers, status_codes=codes,
                       idempotent_only=flag(body, "idempotentOnly", where, default=True), per_try_timeout=per_try,
                       backoff_base=base, backoff_max=most, budget=budget, min_retries=floor)


def _circuit_breaker(body: dict[str, Any], where: str, warn: Warn) -> CircuitBreaker:
    names = ("maxConnections", "maxPendingRequests", "maxParallelRequests", "maxParallelRetries")
    check_fields(body, names, where, warn)
    limits = [integer(body, name, where, default=0, maximum=2**32 - 1) for name in names]
    return CircuitBreaker(*limits)


def _health_check(body: dict[str, Any], where: str, warn: Warn) -> dict[str, Any]:
    check_fields(body, ("passive", "active"), where, warn)
    found: dict[str, Any] = {}
    passive = mapping(body, "passive", where)
    if passive:
        at = f"{where}passive."
        try:
            found["ejection"] = _passive(passive, at, warn)
        except Malformed as error:
            warn(f"{error}; {at[:-1]} ignored")
    active = mapping(body, "active", where)
    if active:
        at = f"{where}active."
        try:
            found["health_check"] = _active(active, at, warn)
        except Malformed as error:
            warn(f"{error}; {at[:-1]} ignored")
    return found


def _passive(body: dict[str, Any], where: str, warn: Warn) -> Ejection:
    check_fields(body, ("consecutive5XxErrors", "consecutiveGatewayErrors", "baseEjectionTime", "maxEjectionTime",
                        "maxEjectionPercent"), where, warn)
    defaults = Ejection()
    base = duration(body, "baseEjectionTime", where, default=defaults.base_time) or 0.0
    most = duration(body, "maxEjectionTime", where, default=max(defaults.max_time, base)) or 0.0
    if base <= 0 or most < base:
        raise Malformed(f"{where}baseEjectionTime must be longer than 0s and not longer than maxEjectionTime")
    return Ejection(consecutive_5xx=integer(body, "consecutive5XxErrors", where, default=defaults.consecutive_5xx),
                    consecutive_gateway_errors=integer(body, "consecutiveGatewayErrors", where,
                                                       default=defaults.consecutive_gateway_errors),
                    base_time=base, max_time=most,
                    max_percent=fraction(body, "maxEjectionPercent", where, default=defaults.max_percent))


def _active(body: dict[str, Any], where: str, warn: Warn) -> HealthCheck:
    check_fields(body, ("type", "http", "interval", "timeout", "healthyThreshold", "unhealthyThreshold"), where, warn)
    kind = text(body, "type", where, required=True)
    if kind != "HTTP":
        raise Malformed(f"{where}type {kind!r:.20} is not supported (HTTP is)")
    http = mapping(body, "http", where, required=True)
    at = f"{where}http."
    check_fields(http, ("path", "expectedStatuses"), at, warn)
    path = text(http, "path", at, required=True)
    if not path.startswith("/") or any(ord(c) < 0x21 or c == "\x7f" for c in path) or len(path) > 1024:
        raise Malformed(f"{at}path {path!r:.40} is not a request path")
    statuses = []
    for index, code in enumerate(sequence(http, "expectedStatuses", at)):
        if type(code) is not int or not 100 <= code <= 599:
            raise Malformed(f"{at}expectedStatuses[{index}] must be a status code, got {code!r:.20}")
        statuses.append(code)
    defaults = HealthCheck()
    interval = duration(body, "interval", where, default=defaults.interval) or 0.0
    timeout = duration(body, "timeout", where, default=defaults.timeout) or 0.0
    if interval <= 0 or timeout <= 0:
        raise Malformed(f"{where}interval and timeout must be longer than 0s")
    return HealthCheck(path=path.encode(), interval=interval, timeout=timeout,
                       healthy_threshold=integer(body, "healthyThreshold", where,
                                                 default=defaults.healthy_threshold, minimum=1),
                       unhealthy_threshold=integer(body, "unhealthyThreshold", where,
                                                   default=defaults.unhealthy_threshold, minimum=1),
                       expected_statuses=tuple(dict.fromkeys(statuses)) or defaults.expected_statuses)


def _fault_injection(body: dict[str, Any], where: str, warn: Warn) -> FaultInjection:
    check_fields(body, ("delay", "abort", "onlyWithHeader"), where, warn)
    delay = mapping(body, "delay", where)
    abort = mapping(body, "abort", where)
    if not delay and not abort:
        raise Malformed(f"{where[:-1]} needs a delay or an abort")
    delay_for, delay_fraction, status, abort_fraction = 0.0, 0.0, 0, 0.0
    if delay:
        at = f"{where}delay."
        check_fields(delay, ("fixedDelay", "percentage"), at, warn)
        delay_for = duration(delay, "fixedDelay", at, default=None) or 0.0
        if delay.get("fixedDelay") is None:
            raise Malformed(f"{at}fixedDelay is missing")
        delay_fraction = fraction(delay, "percentage", at, default=1.0)
    if abort:
        at = f"{where}abort."
        check_fields(abort, ("httpStatus", "percentage"), at, warn)
        if abort.get("httpStatus") is None:
            raise Malformed(f"{at}httpStatus is missing")
        status = integer(abort, "httpStatus", at, default=0, minimum=200, maximum=599)
        abort_fraction = fraction(abort, "percentage", at, default=1.0)
    header = token(body, "onlyWithHeader", where, required=False)
    return FaultInjection(delay=delay_for, delay_fraction=delay_fraction, abort_status=status,
                          abort_fraction=abort_fraction, header=header.lower().encode())


def _rate_limit(body: dict[str, Any], where: str, warn: Warn) -> RateLimit:
    check_fields(body, ("type", "local"), where, warn)
    kind = text(body, "type", where, required=True)
    if kind != "Local":
        raise Malformed(f"{where}type {kind!r:.20} is not supported (Local is)")
    local = mapping(body, "local", where, required=True)
    at = f"{where}local."
    check_fields(local, ("rules",), at, warn)
    rules = sequence(local, "rules", at)
    if not rules:
        raise Malformed(f"{at}rules is empty")
    if len(rules) > 1:
        warn(f"{at}rules: only one rule is supported; rules after the first ignored")
    at = f"{at}rules[0]."
    rule = require_object(rules[0], at[:-1])
    check_fields(rule, ("clientSelectors", "limit"), at, warn)
    per_client = False
    for index, selector in enumerate(sequence(rule, "clientSelectors", at)):
        here = f"{at}clientSelectors[{index}]."
        selector = require_object(selector, here[:-1])
        check_fields(selector, ("sourceCIDR",), here, warn)
        cidr = mapping(selector, "sourceCIDR", here, required=True)
        check_fields(cidr, ("type", "value"), f"{here}sourceCIDR.", warn)
        if text(cidr, "type", f"{here}sourceCIDR.") != "Distinct" or text(cidr, "value", "") not in _ANY_CLIENT:
            raise Malformed(f"{here}sourceCIDR: only {{type: Distinct, value: 0.0.0.0/0 or ::/0}} (a bucket per "
                            "client address) is supported")
        per_client = True
    limit = mapping(rule, "limit", at, required=True)
    here = f"{at}limit."
    check_fields(limit, ("requests", "unit", "burst"), here, warn)
    if limit.get("requests") is None:
        raise Malformed(f"{here}requests is missing")
    requests = integer(limit, "requests", here, default=1, minimum=1)
    unit = text(limit, "unit", here, required=True)
    if unit not in _UNITS:
        raise Malformed(f"{here}unit {unit!r:.20} is not Second, Minute, Hour or Day")
    return RateLimit(requests=requests, per=_UNITS[unit], burst=integer(limit, "burst", here, default=0),
                     per_client=per_client)


def _timeout(body: dict[str, Any], where: str, warn: Warn) -> Timeouts:
    check_fields(body, ("http",), where, warn)
    http = mapping(body, "http", where, required=True)
    at = f"{where}http."
    check_fields(http, ("requestTimeout",), at, warn)
    if http.get("requestTimeout") is None:
        raise Malformed(f"{at}requestTimeout is missing")
    return Timeouts(request=duration(http, "requestTimeout", at, default=None))


# (spec field, reader, PolicySpec field). A reader returning a dict sets several PolicySpec fields.
_SECTIONS: tuple[tuple[str, Any, str], ...] = (
    ("loadBalancer", _load_balancer, "load_balancer"),
    ("sessionPersistence", _session_persistence, "affinity"),
    ("retry", _retry, "retry"),
    ("circuitBreaker", _circuit_breaker, "circuit_breaker"),
    ("healthCheck", _health_check, ""),
    ("faultInjection", _fault_injection, "fault"),
    ("rateLimit", _rate_limit, "rate_limit"),
    ("timeout", _timeout, "timeouts"),
)
