"""ingress-nginx's traffic annotations, compiled into one traffic policy layer of their Ingress.

An Ingress's timeouts, `proxy-next-upstream*`, `load-balance`, `upstream-hash-by`, `affinity` with
`session-cookie-*` and `backend-protocol` become a `PolicySpec` (routing.policy.spec), the same layer
a BackendTrafficPolicy attached to that Ingress makes. The policy index stacks it right below such a
policy: a BackendTrafficPolicy on the same Ingress wins section by section (a warning names each
section both set), and the annotations win over policies on the Services (they are more specific).
Facts are ingress-nginx's:

- timeouts are whole seconds; a bad value falls back to the global setting (ingress-nginx's ConfigMap);
- `proxy-next-upstream-tries` counts attempts, the first included: tries N is N - 1 retries; 0 means no
  limit but the number of endpoints (each attempt goes to another pod in nginx, so never more attempts
  than pods); retries are immediate (nginx has no backoff) and not capped by a retry budget;
- `upstream-hash-by` wins over `load-balance`; `affinity: cookie` wins over both (balancer.lua);
- `backend-protocol: HTTPS` is TLS to the pods without verification (ingress-nginx's default); `GRPC` and
  `H2C` are HTTP/2 without TLS (h2c, prior knowledge), `GRPCS` HTTP/2 over TLS (ALPN h2, no verification);
  `proxy-ssl-secret` (a Secret of the Ingress's namespace, any type) adds its `ca.crt` (verified against
  with `proxy-ssl-verify: on`) and its `tls.crt`/`tls.key` (the client certificate shown to the pods);
  `proxy-ssl-name` is the name verified (and, with `proxy-ssl-server-name: on`, sent as SNI). A Secret
  that is missing, in another namespace, or holds neither a CA nor a key pair makes the Ingress's routes
  answer 503, as ingress-nginx denies a location whose proxy-ssl-secret cannot be used. `proxy-ssl-verify`,
  `-name`, `-server-name` only act with `proxy-ssl-secret`.
"""

from __future__ import annotations

import re

from proxy.routing.access import Refuse
from proxy.routing.ingress.annotations import DEFAULTS, IngressAnnotations
from proxy.routing.ingress.secrets import SecretReader
from proxy.routing.model import Timeouts
from proxy.routing.policies import (
    CONSISTENT_HASH,
    HASH_COOKIE,
    HASH_HEADER,
    HASH_SOURCE_IP,
    HASH_URI,
    HTTP2,
    LEAST_REQUEST,
    RETRY_ERROR,
    RETRY_TIMEOUT,
    BackendTLS,
    LoadBalancer,
    RetryPolicy,
    SessionAffinity,
)
from proxy.routing.policy.spec import PolicySpec

DEFAULT_TRIES = 3  # ingress-nginx's proxy-next-upstream-tries
DEFAULT_NEXT_UPSTREAM = ("error", "timeout")
# Retries of "no limit" (tries 0): the cluster's endpoints bound them (RetryPolicy.per_endpoint).
UNLIMITED_RETRIES = 1000
_WORDS = {"error": RETRY_ERROR, "invalid_header": RETRY_ERROR, "timeout": RETRY_TIMEOUT}
# One nginx variable, optionally in braces: what upstream-hash-by can hash here.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z0-9_]+)\}|(?P<plain>[A-Za-z0-9_]+))")
_COOKIE_ATTRIBUTES = ("session-cookie-name", "session-cookie-path", "session-cookie-max-age",
                      "session-cookie-expires", "session-cookie-samesite", "session-cookie-secure",
                      "session-cookie-domain", "affinity-mode", "session-cookie-change-on-failure")


def traffic_layer(values: IngressAnnotations,
                  secrets: SecretReader | None = None) -> tuple[PolicySpec | None, Refuse | None, list[str]]:
    """The policy layer of one Ingress's traffic annotations (None: none set), a refusal for its routes
    (None: served), and problems, as messages. `secrets`: where proxy-ssl-secret is read (None: nowhere,
    every Secret missing)."""
    problems: list[str] = []
    sections: dict[str, object] = {}
    if values.proxy_connect_timeout > 0:
        sections["connect_timeout"] = float(values.proxy_connect_timeout)
    if values.proxy_read_timeout > 0 or values.proxy_send_timeout > 0:
        sections["timeouts"] = Timeouts(read=float(values.proxy_read_timeout) or None,
                                        send=float(values.proxy_send_timeout) or None)
    retry = _retry(values)
    if retry is not None:
        sections["retry"] = retry
    affinity = _affinity(values, problems)
    if affinity is not None:
        sections["affinity"] = affinity
        if values.upstream_hash_by or values.load_balance:
            problems.append("annotations upstream-hash-by and load-balance have no effect with affinity: cookie "
                            "(as in ingress-nginx, the cookie decides)")
    else:
        balancer = _balancer(values, problems)
        if balancer is not None:
            sections["load_balancer"] = balancer
    if values.service_upstream:
        sections["service_upstream"] = True
    tls = _tls(values, problems)
    if values.backend_protocol in _HTTP2_PROTOCOLS:
        sections["protocol"] = HTTP2
    refusal = None
    if "proxy-ssl-secret" in values.invalid:
        refusal = Refuse(503, reason="invalid proxy-ssl-secret annotation")  # its own warning says why
    elif values.proxy_ssl_secret:
        tls, refusal = _proxy_ssl(values, tls, secrets, problems)
    else:
        stray = [name for name, value in (("proxy-ssl-verify", values.proxy_ssl_verify),
                                          ("proxy-ssl-name", values.proxy_ssl_name),
                                          ("proxy-ssl-server-name", values.proxy_ssl_server_name)) if value]
        if stray:
            problems.append(f"annotations {', '.join(stray)} have no effect without proxy-ssl-secret (as in "
                            "ingress-nginx)")
    if tls is not None:
        sections["tls"] = tls
    return (PolicySpec(**sections) if sections else None), refusal, problems  # type: ignore[arg-type]


def _proxy_ssl(values: IngressAnnotations, tls: BackendTLS | None, secrets: SecretReader | None,
               problems: list[str]) -> tuple[BackendTLS | None, Refuse | None]:
    """TLS to the pods with proxy-ssl-secret's CA and client certificate, or a refusal (fail closed)."""
    data, problem = secrets.data(values.proxy_ssl_secret) if secrets is not None else (None, "no Secrets read")
    if data is not None:
        ca = data.get("ca.crt", b"").strip()
        certificate, key = data.get("tls.crt", b"").strip(), data.get("tls.key", b"").strip()
        if not ca and not (certificate and key):
            problem = f"Secret {values.proxy_ssl_secret} holds neither ca.crt nor tls.crt and tls.key"
        elif b"-----BEGIN" not in (ca or certificate):
            problem = f"Secret {values.proxy_ssl_secret}: {'ca.crt' if ca else 'tls.crt'} is not PEM"
    if data is None or problem:
        problems.append(f"annotation proxy-ssl-secret: {problem}; the Ingress's paths answer 503 rather than reach "
                        "the pods without it (as ingress-nginx)")
        return tls, Refuse(503, reason="proxy-ssl-secret cannot be used")
    if tls is None:
        problems.append("annotation proxy-ssl-secret has no effect without backend-protocol HTTPS or GRPCS (as in "
                        "ingress-nginx): the pods are spoken to in plain HTTP")
        return None, None
    name = values.proxy_ssl_name
    verify = values.proxy_ssl_verify
    return BackendTLS(sni=name if name and values.proxy_ssl_server_name else "", ca=ca + b"\n" if ca else b"",
                      verify=verify, subject_alt_names=(name,) if name and verify else (),
                      client_certificate=certificate + b"\n" if certificate and key else b"",
                      client_key=key + b"\n" if certificate and key else b""), None


def _retry(values: IngressAnnotations) -> RetryPolicy | None:
    names = ("proxy-next-upstream", "proxy-next-upstream-tries", "proxy-next-upstream-timeout")
    if (not values.proxy_next_upstream and values.proxy_next_upstream_tries < 0
            and values.proxy_next_upstream_timeout < 0 and not values.invalid.intersection(names)):
        return None  # pyngress's own default: connect failures retried (--upstream-retries)
    words = values.proxy_next_upstream or DEFAULT_NEXT_UPSTREAM
    tries = values.proxy_next_upstream_tries if values.proxy_next_upstream_tries >= 0 else DEFAULT_TRIES
    if "off" in words:
        return RetryPolicy(num_retries=0, retry_on=frozenset())
    triggers = set()
    codes = set()
    for word in words:
        if word.startswith("http_"):
            codes.add(int(word[5:]))
        elif word in _WORDS:
            triggers.add(_WORDS[word])
    return RetryPolicy(num_retries=tries - 1 if tries else UNLIMITED_RETRIES, retry_on=frozenset(triggers),
                       status_codes=frozenset(codes), idempotent_only="non_idempotent" not in words,
                       backoff_base=0.0, backoff_max=0.0, budget=1.0,
                       window=float(max(values.proxy_next_upstream_timeout, 0)), per_endpoint=True)


def _balancer(values: IngressAnnotations, problems: list[str]) -> LoadBalancer | None:
    if values.upstream_hash_by:
        found = _VARIABLE.fullmatch(values.upstream_hash_by)
        variable = (found["braced"] or found["plain"]) if found is not None else ""
        if variable in ("remote_addr", "binary_remote_addr"):
            return LoadBalancer(CONSISTENT_HASH, HASH_SOURCE_IP)
        if variable == "request_uri":
            return LoadBalancer(CONSISTENT_HASH, HASH_URI)
        if variable.startswith("http_") and len(variable) > 5:
            return LoadBalancer(CONSISTENT_HASH, HASH_HEADER, variable[5:].replace("_", "-").lower().encode())
        if variable.startswith("cookie_") and len(variable) > 7:
            return LoadBalancer(CONSISTENT_HASH, HASH_COOKIE, variable[7:].encode())
        problems.append(f"annotation upstream-hash-by: {values.upstream_hash_by!r:.60} is not supported (one of "
                        "$remote_addr, $request_uri, $http_<name>, $cookie_<name> is); not hashed")
    kind = values.load_balance
    if kind == "ewma":
        return LoadBalancer(LEAST_REQUEST)
    if kind == "round_robin":
        return LoadBalancer()
    if kind:
        problems.append(f"annotation load-balance: {kind} is set by upstream-hash-by or affinity, not by "
                        "load-balance; round robin used")
    return None


def _affinity(values: IngressAnnotations, problems: list[str]) -> SessionAffinity | None:
    if values.affinity != "cookie":
        stray = [name for name in _COOKIE_ATTRIBUTES
                 if getattr(values, name.replace("-", "_")) != getattr(_DEFAULTS, name.replace("-", "_"))]
        if stray and "affinity" not in values.invalid:
            problems.append(f"annotations {', '.join(stray)} have no effect without affinity: cookie")
        return None
    max_age = values.session_cookie_max_age
    if max_age < 0:
        max_age = values.session_cookie_expires  # sent as Max-Age: the same lifetime for every browser since 2011
    same_site = values.session_cookie_samesite
    return SessionAffinity(cookie=values.session_cookie_name.encode(),
                           path=(values.session_cookie_path or "/").encode(),
                           max_age=max_age if max_age >= 0 else None, same_site=same_site.encode(),
                           secure=values.session_cookie_secure, domain=values.session_cookie_domain.encode())


def _tls(values: IngressAnnotations, problems: list[str]) -> BackendTLS | None:
    protocol = values.backend_protocol
    if protocol == "HTTP":
        return None
    if protocol in ("HTTPS", "GRPCS"):
        return BackendTLS(verify=False)
    if protocol in _HTTP2_PROTOCOLS:
        return None  # h2c
    problems.append(f"annotation backend-protocol: {protocol} is not supported yet; the pods are spoken to in "
                    "HTTP/1.1")
    return None


# backend-protocol values spoken in HTTP/2 (GRPCS over TLS, the others h2c with prior knowledge).
_HTTP2_PROTOCOLS = frozenset(("GRPC", "GRPCS", "H2C"))


_DEFAULTS = DEFAULTS

__all__ = ["traffic_layer"]
