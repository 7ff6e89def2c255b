"""The Gateway API's own traffic fields: `sessionPersistence` (GEP-1619) and HTTPRoute `retry` (GEP-1731).

HTTPRoute rules carry both (where the installed CRDs have them); our BackendTrafficPolicy takes
`sessionPersistence` in the same shape, so one reader serves both. The v1.6 shape (`sessionName`,
`cookieConfig.lifetimeType`) and the later one (`cookie.name`, `cookie.path`, `cookie.lifetimeType`)
are both read.
"""

from __future__ import annotations

from typing import Any

from proxy.routing.fields import Malformed, mapping, sequence, text
from proxy.routing.policies import RETRY_CONNECT_FAILURE, RETRY_RESET, RetryPolicy, SessionAffinity
from proxy.routing.policy.reading import Warn, check_fields, duration, integer, token

DEFAULT_COOKIE = "pyngress-session"
_SESSION_FIELDS = ("sessionName", "absoluteTimeout", "idleTimeout", "type", "cookieConfig", "cookie", "header")
_RETRY_FIELDS = ("codes", "attempts", "backoff")
# Attempts when a route's retry does not say (the Gateway API leaves it to the implementation).
DEFAULT_ATTEMPTS = 2


def read_session_persistence(body: dict[str, Any], where: str, warn: Warn) -> SessionAffinity:
    """Cookie affinity; raises Malformed for what cannot be served (header-based sessions)."""
    check_fields(body, _SESSION_FIELDS, where, warn)
    kind = text(body, "type", where) or "Cookie"
    if kind != "Cookie":
        raise Malformed(f"{where}type {kind!r:.20} is not supported (Cookie is)")
    if body.get("idleTimeout") is not None:
        warn(f"{where}idleTimeout is not supported; ignored")
    cookie = mapping(body, "cookie", where)
    config = mapping(body, "cookieConfig", where) or cookie
    check_fields(config, ("name", "path", "lifetimeType") if cookie else ("lifetimeType",),
                 f"{where}{'cookie' if cookie else 'cookieConfig'}.", warn)
    name = token(cookie, "name", f"{where}cookie.", required=False) or token(
        body, "sessionName", where, required=False, default=DEFAULT_COOKIE)
    path = text(cookie, "path", f"{where}cookie.") or "/"
    if not path.startswith("/") or any(ord(c) < 0x21 or c in ";\x7f" for c in path):
        raise Malformed(f"{where}cookie.path {path!r:.40} is not a cookie path")
    lifetime = text(config, "lifetimeType", where) or "Session"
    if lifetime not in ("Session", "Permanent"):
        raise Malformed(f"{where}lifetimeType {lifetime!r:.20} is not Session or Permanent")
    timeout = duration(body, "absoluteTimeout", where, default=None)
    max_age = None
    if lifetime == "Permanent":
        if timeout is None:
            raise Malformed(f"{where}absoluteTimeout is required with lifetimeType Permanent")
        max_age = max(1, int(timeout))
    elif timeout is not None:
        warn(f"{where}absoluteTimeout of a Session cookie is not enforced; ignored")
    return SessionAffinity(cookie=name.encode(), path=path.encode(), max_age=max_age)


def read_route_retry(body: dict[str, Any], where: str, warn: Warn) -> RetryPolicy:
    """An HTTPRoute rule's `retry`: `attempts` retries (after the first try) of connect failures, resets and
    the listed `codes`, at least `backoff` apart."""
    check_fields(body, _RETRY_FIELDS, where, warn)
    codes = []
    for index, code in enumerate(sequence(body, "codes", where)):
        if type(code) is not int or not 400 <= code <= 599:
            raise Malformed(f"{where}codes[{index}] must be a status code from 400 to 599, got {code!r:.20}")
        codes.append(code)
    attempts = integer(body, "attempts", where, default=DEFAULT_ATTEMPTS, minimum=1, maximum=1000)
    backoff = duration(body, "backoff", where, default=None)
    triggers = frozenset({RETRY_CONNECT_FAILURE, RETRY_RESET})
    if backoff is None:
        return RetryPolicy(num_retries=attempts, retry_on=triggers, status_codes=frozenset(codes))
    # Exponential from `backoff` up to ten times it (Envoy's ratio); never sooner than `backoff`.
    return RetryPolicy(num_retries=attempts, retry_on=triggers, status_codes=frozenset(codes),
                       backoff_base=backoff, backoff_max=10 * backoff)
