"""`python -m bench.auth_tls`: what client certificates (ingress-nginx's auth-tls-*) cost, in plain timing.

- the SNI callback (once per handshake) for a host without client authentication, on a store without any
  authenticating host and on one with such hosts (the others must not pay: one dict lookup at most);
- the per-request check (`ClientCertificateCheck.on_request`) on a real `RequestHead` whose connection
  verdict is a verified certificate: only routes of authenticating hosts run it.

Numbers are the minimum of several repeats, in microseconds; the machine's load shows in them.
"""

from __future__ import annotations

import ssl
import timeit
from typing import Any

from proxy.http.head import RequestHead
from proxy.routing.ingress.client_auth import ClientCertificateCheck
from proxy.tls.certs import Certificate
from proxy.tls.client_auth import ClientAuthContext, ClientCertificate
from proxy.tls.default import generate_default_certificate
from proxy.tls.store import CertStore, CertStoreHolder, prepare_context

VERIFIED = ClientCertificate(secret="default/ca", verify="SUCCESS", error=0, subject="CN=client,O=Example",
                             issuer="CN=Example CA", escaped_pem="-----BEGIN%20CERTIFICATE-----%0A")


class _Head(RequestHead):
    """A request head whose connection presented VERIFIED."""

    __slots__ = ()

    @property
    def client_certificate(self) -> ClientCertificate:
        return VERIFIED


class _SslObject:
    """What the SNI callback touches of an SSLObject (the context and one attribute)."""

    context: Any = None
    pyngress_server_name: str | None = None


def _best(call: Any, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6


def main() -> None:
    cert: Certificate = generate_default_certificate()
    plain = CertStore({"plain.test": cert}, default=cert)
    auth = ClientAuthContext(secret="default/ca", verify="on", depth=1, session_context=b"x" * 32)
    own = prepare_context(cert)
    mixed = CertStore({"plain.test": cert, "auth.test": cert}, default=cert,
                      authenticating={"auth.test": ("auth", own, auth)})
    listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ssl_object = _SslObject()
    for name, store in (("no authenticating host", plain), ("with authenticating hosts", mixed)):
        holder = CertStoreHolder(store)
        cost = _best(lambda h=holder: h._on_server_name(ssl_object, "plain.test", listener), 200_000)
        print(f"SNI callback, plain host, store {name}: {cost:.3f} us")

    check = ClientCertificateCheck(secret="default/ca")

    def request() -> _Head:
        head = _Head()
        head.fields = [b"Host", b": ", b"auth.test", b"\r\n", b"User-Agent", b": ", b"bench", b"\r\n"]
        head.scheme = "https"
        return head

    made = _best(request, 50_000)
    checked = _best(lambda: check.on_request(request()), 50_000)
    print(f"ClientCertificateCheck.on_request (verified, 3 fields set): {checked - made:.3f} us per request")


if __name__ == "__main__":
    main()
