"""What ties a request to an endpoint: the key a consistent-hash balancer hashes, and the affinity cookie.

The affinity cookie's value is the endpoint's token (proxy.upstream.cluster.affinity_token), a digest
rather than the pod's address; the cookie is HttpOnly (it is the proxy's, not the application's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.http.head import RequestHead
from proxy.routing.policies import HASH_COOKIE, HASH_HEADER, HASH_SOURCE_IP, HASH_URI, LoadBalancer, SessionAffinity

if TYPE_CHECKING:
    from proxy.http.exchange import Exchange


def cookie_value(head: RequestHead, name: bytes) -> bytes | None:
    """The value of cookie `name` in the request's Cookie fields; None when absent."""
    fields = head.fields
    prefix = name + b"="
    for index in range(0, len(fields), 4):
        if fields[index].lower() != b"cookie":
            continue
        for part in fields[index + 2].split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix):]
    return None


def request_key(ex: Exchange, policy: LoadBalancer) -> bytes | None:
    """What a ConsistentHash balancer hashes for this request (None: the request lacks it)."""
    on = policy.hash_on
    if on == HASH_SOURCE_IP:
        return ex.client_ip
    if on == HASH_HEADER:
        return ex.header(policy.hash_key)
    if on == HASH_COOKIE:
        return cookie_value(ex, policy.hash_key)
    if on == HASH_URI:
        return ex.target
    return None


def set_cookie(affinity: SessionAffinity, token: bytes) -> bytes:
    """The Set-Cookie value naming the endpoint whose token is `token`."""
    value = affinity.cookie + b"=" + token + b"; Path=" + (affinity.path or b"/")
    if affinity.max_age is not None:
        value += b"; Max-Age=%d" % affinity.max_age
    if affinity.domain:
        value += b"; Domain=" + affinity.domain
    if affinity.same_site:
        value += b"; SameSite=" + affinity.same_site
    if affinity.secure:
        value += b"; Secure"
    return value + b"; HttpOnly"


__all__ = ["cookie_value", "request_key", "set_cookie"]
