"""ingress-nginx's client certificate annotations (`auth-tls-*`), compiled: the hosts that ask for a certificate,
and the check each route of such an Ingress runs.

Two halves, as in nginx (`ssl_verify_client` in the server block, the checks and headers per request):

- `client_auth_hosts` (build time, read by the controller for the TLS store): each rule host of an Ingress with
  `auth-tls-secret` asks client certificates, verified against the Secret's `ca.crt`; the oldest Ingress
  naming a host decides (ingress-nginx's "server already configured for mutual authentication");
- `ClientCertificateCheck` (per request, only on the routes of such hosts; the check of the host's oldest
  such Ingress guards the host's other Ingresses' paths too, as nginx's server-level directive does): reads
  the connection's verdict (`Request.client_certificate`) and answers as nginx does: no certificate with
  verify "on": 400 "No required SSL certificate was sent"; a certificate that failed verification: 400 "The
  SSL certificate error" (both a 302 to `auth-tls-error-page` when set); `auth-tls-match-cn` not found in
  the subject DN: 403. Then it sets `ssl-client-verify`, `ssl-client-subject-dn`, `ssl-client-issuer-dn`
  (and `ssl-client-cert` with `auth-tls-pass-certificate-to-upstream`) on the upstream request, replacing
  what the client sent.

Fail closed: a connection whose host context does not carry this Ingress's CA (the Secret is missing or
unusable, another Ingress's CA won the host, libssl cannot be driven) gets 503, never the route unprotected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from proxy.objects import Key, KubeObject, Warning
from proxy.routing.access import Refuse
from proxy.routing.filters import Answer, compose
from proxy.routing.ingress.annotations import IngressAnnotations, annotations_of, parse_annotations
from proxy.routing.model import Route
from proxy.routing.request import Request

# The annotations that make an Ingress use client certificates (and the name the others act with).
SECRET_ANNOTATION = "auth-tls-secret"
_FAIL_CLOSED = ("auth-tls-secret", "auth-tls-match-cn", "auth-tls-error-page")
# X509_V_ERR_ codes `optional_no_ca` lets through (nginx's ngx_ssl_verify_error_optional): depth zero self
# signed (18), self signed in chain (19), unable to get issuer (2), ... locally (20), unable to verify leaf (21).
OPTIONAL_NO_CA_ERRORS = frozenset({2, 18, 19, 20, 21})

_NO_CERTIFICATE = "No required SSL certificate was sent"
_CERTIFICATE_ERROR = "The SSL certificate error"

_VERIFY = b"ssl-client-verify"
_SUBJECT = b"ssl-client-subject-dn"
_ISSUER = b"ssl-client-issuer-dn"
_CERT = b"ssl-client-cert"
_FIELDS = frozenset({_VERIFY, _SUBJECT, _ISSUER, _CERT})


@dataclass(frozen=True, slots=True)
class ClientCertificateCheck:
    """The request phase of one Ingress's `auth-tls-*` annotations (see the module docstring)."""

    secret: str  # "namespace/name" of the CA Secret
    verify: str = "on"
    match_cn: re.Pattern[str] | None = None
    error_page: bytes = b""
    pass_certificate: bool = False
    # After redirects to HTTPS (a plain-HTTP request is redirected before it is refused), before CORS.
    order: int = field(default=1, init=False)

    def on_request(self, request: Request) -> Answer | None:
        certificate = request.client_certificate
        if certificate is None:
            if request.scheme == "https":
                return Answer(503, detail="client certificates are not set up for this host")
            verify, error, subject = "NONE", 0, ""  # plain HTTP: as a TLS connection without certificate
        elif certificate.secret != self.secret:
            return Answer(503, detail="this host verifies client certificates against another CA")
        else:
            verify, error, subject = certificate.verify, certificate.error, certificate.subject
        mode = self.verify
        if mode != "off":
            if verify == "NONE":
                if mode == "on":
                    return self._refuse(_NO_CERTIFICATE)
            elif verify != "SUCCESS" and not (mode == "optional_no_ca" and error in OPTIONAL_NO_CA_ERRORS):
                return self._refuse(_CERTIFICATE_ERROR)
        if self.match_cn is not None and self.match_cn.search(subject) is None:
            return Answer(403, detail="client certificate unauthorized")
        if certificate is not None and certificate.subject:
            pairs: tuple[tuple[bytes, bytes], ...] = (
                (_VERIFY, verify.encode("latin-1", "replace")),
                (_SUBJECT, certificate.subject.encode("utf-8", "replace")),
                (_ISSUER, certificate.issuer.encode("utf-8", "replace")))
            if self.pass_certificate:
                pairs += ((_CERT, certificate.escaped_pem.encode("ascii")),)
        else:
            pairs = ((_VERIFY, verify.encode("latin-1", "replace")),)
        # One pass: the client's own fields of these names go (nginx sends no field for an empty variable).
        request.replace_headers(_FIELDS, pairs)
        return None

    def _refuse(self, reason: str) -> Answer:
        if self.error_page:
            return Answer(302, self.error_page, detail=reason)
        return Answer(400, detail=reason)


def host_check(features: Iterable[Any]) -> ClientCertificateCheck | None:
    """The check of a host's oldest Ingress asking client certificates (`features`: each Ingress's NginxFeatures
    or None, oldest first): nginx's `ssl_verify_client` is the server's, so it guards the host's other Ingresses'
    paths too."""
    for nginx in features:
        security = getattr(nginx, "security", None) if nginx is not None else None
        for item in security.filters if security is not None else ():
            if isinstance(item, ClientCertificateCheck):
                return item
    return None


def guard(route: Route, check: ClientCertificateCheck) -> Route:
    """`route` (of an Ingress without auth-tls of its own) with its host's client certificate check."""
    items: list[Any] = []
    if route.filters is not None:
        items += route.filters.request
        items += route.filters.response
        items += route.filters.mirrors
    items.append(check)
    return replace(route, filters=compose(dict.fromkeys(items)))


def client_auth_of(values: IngressAnnotations, *, namespace: str) -> tuple[Any | None, list[str]]:
    """The filter of one Ingress (a ClientCertificateCheck, a Refuse when it cannot be honoured, None when the
    Ingress uses no client certificates) and problems, as messages."""
    broken = [name for name in _FAIL_CLOSED if name in values.invalid]
    if broken:
        return Refuse(503, reason=f"invalid {broken[0]} annotation"), []
    if not values.auth_tls_secret:
        return None, []
    secret = _secret_key(values.auth_tls_secret, namespace)
    if secret[0] != namespace:
        return Refuse(503, reason="auth-tls-secret in another namespace"), [
            f"annotation {SECRET_ANNOTATION}: Secrets of another namespace are not allowed (as ingress-nginx's "
            "default); the Ingress's routes answer 503"]
    pattern = re.compile(values.auth_tls_match_cn) if values.auth_tls_match_cn else None
    return ClientCertificateCheck(secret="/".join(secret), verify=values.auth_tls_verify_client, match_cn=pattern,
                                  error_page=values.auth_tls_error_page.encode("latin-1"),
                                  pass_certificate=values.auth_tls_pass_certificate_to_upstream), []


def client_auth_hosts(ingresses: Iterable[KubeObject]) -> tuple[dict[str, tuple[Key, str, int]], list[Warning]]:
    """Host -> (CA Secret, verify mode, depth) over the served Ingresses; the oldest Ingress naming a host wins,
    a younger one asking otherwise is warned about (its routes answer 503 on that host, see the check).
    Only Ingresses carrying an auth-tls-secret annotation are parsed."""
    found: list[tuple[tuple[str, str, str], str, str, IngressAnnotations, Mapping[str, Any]]] = []
    for ingress in ingresses:
        annotations = annotations_of(ingress)
        if not annotations or not any(isinstance(k, str) and k.endswith(SECRET_ANNOTATION) for k in annotations):
            continue
        values, _ = parse_annotations(annotations)  # their warnings are the build's
        if not values.auth_tls_secret or any(name in values.invalid for name in _FAIL_CLOSED):
            continue
        meta: Mapping[str, Any] = ingress.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name") or "")
        age = (str(meta.get("creationTimestamp") or ""), namespace, name)
        found.append((age, namespace, name, values, ingress))
    hosts: dict[str, tuple[Key, str, int]] = {}
    owners: dict[str, str] = {}
    warnings: list[Warning] = []
    for _, namespace, name, values, obj in sorted(found, key=lambda item: item[0]):
        secret = _secret_key(values.auth_tls_secret, namespace)
        if secret[0] != namespace:
            continue
        wanted = (secret, values.auth_tls_verify_client, values.auth_tls_verify_depth)
        for host in _rule_hosts(obj):
            current = hosts.get(host)
            if current is None:
                hosts[host] = wanted
                owners[host] = f"{namespace}/{name}"
            elif current != wanted:
                warnings.append(Warning("Ingress", namespace, name, f"host {host} already verifies client "
                                        f"certificates as Ingress {owners[host]} says; this Ingress's routes on "
                                        "it answer 503 unless both name the same auth-tls-secret"))
    return hosts, warnings


def _secret_key(value: str, namespace: str) -> Key:
    secret_namespace, sep, name = value.partition("/")
    return (secret_namespace, name) if sep else (namespace, value)


def _rule_hosts(ingress: Mapping[str, Any]) -> list[str]:
    spec = ingress.get("spec")
    rules = spec.get("rules") if isinstance(spec, Mapping) else None
    hosts = []
    for rule in rules if isinstance(rules, list) else ():
        host = rule.get("host") if isinstance(rule, Mapping) else None
        if isinstance(host, str) and host:
            hosts.append(host.strip().lower().rstrip("."))
    return hosts


__all__ = ["ClientCertificateCheck", "client_auth_hosts", "client_auth_of", "guard", "host_check"]
