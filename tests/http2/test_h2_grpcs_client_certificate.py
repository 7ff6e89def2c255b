"""HTTP/2 end to end over TLS on both sides: an h2 client (ALPN on the proxy's HTTPS listener) → the proxy → a
GRPCS pod (h2 by ALPN) that requires our client certificate from `proxy-ssl-secret`.

ingress-nginx: test/e2e/annotations/proxyssl.go "should set valid proxy-ssl-secret, proxy-ssl-verify to on,
proxy-ssl-verify-depth to 2, and proxy-ssl-server-name to on" (the Secret's CA verifies the pod, its key pair is
the client certificate; there with HTTPS, here with backend-protocol GRPCS, test/e2e/annotations/backendprotocol.go
"should set backend protocol to grpcs:// and use grpc_pass"), and docs annotations.md "Backend Certificate
Authentication" (the Secret gone: the route answers 503, fail closed).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

from backend_pods import Pki, root_pem, server_context
from proxy.tls.default import generate_default_certificate
from test_h2_forwarding import client_context, tls_holder
from test_nginx_annotations import ingress, serve

HOST = "grpcs.example"
NAME = "secure.internal"


def tls_secret(**data: bytes) -> dict[tuple[str, str], Any]:
    return {("default", "backend-tls"): {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "backend-tls", "namespace": "default"},
        "data": {key.replace("_", "."): base64.b64encode(value).decode() for key, value in data.items()}}}


def client_subjects(pod: Any) -> list[str]:
    """The common names of the client certificates the pod's TLS connections were made with."""
    subjects = []
    for transport in pod.transports:
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert() if ssl_object is not None else None
        if peer:
            subjects.append(dict(item[0] for item in peer["subject"])["commonName"])
    return subjects


async def test_h2_client_to_grpcs_pod_with_the_proxy_ssl_secret_client_certificate(make_proxy, make_h2_pod,
                                                                                    h2_clients, tmp_path):
    pki = Pki(tmp_path, name="pods")
    names: list[str] = []
    pod = await make_h2_pod(context=server_context(pki.leaf(NAME), client_ca=root_pem(pki), names=names))
    pod.name = "grpcs"  # serve() makes a Service + EndpointSlice per pod by name
    proxy = await make_proxy()
    default = generate_default_certificate()  # the listener's certificate (the client does not verify it)
    await proxy.server.start_https(tls_holder((default, default)).server_context(), port=0)
    client_cert = pki.leaf("pyngress-client")
    annotations = {"backend_protocol": "GRPCS", "proxy_ssl_secret": "default/backend-tls",
                   "proxy_ssl_verify": "on", "proxy_ssl_name": NAME, "proxy_ssl_server_name": "on"}
    config = serve(proxy, [pod], ingress("g", HOST, ("/", "Prefix", "grpcs"), **annotations),
                   secrets=tls_secret(ca_crt=root_pem(pki), tls_crt=client_cert.chain_pem,
                                      tls_key=client_cert.key_pem))
    assert [w for w in config.warnings if w.name == "g"] == []

    client = await h2_clients(proxy.server.https_port, context=client_context(), server_hostname=HOST)
    assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    response = await client.get("/trailers", authority=HOST, scheme="https")
    assert response.status == 200 and bytes(response.body) == b"some body"
    assert response.trailers == [(b"x-checksum", b"abc"), (b"grpc-status", b"0")]
    assert pod.seen[-1][":scheme"] == "https" and pod.seen[-1][":authority"] == HOST
    assert names == [NAME]  # SNI: proxy-ssl-name
    assert client_subjects(pod) == ["pyngress-client"]

    # The Secret gone: 503 on the stream (fail closed), the pod not reached again.
    serve(proxy, [pod], ingress("g", HOST, ("/", "Prefix", "grpcs"), **annotations))
    assert (await client.get("/echo", authority=HOST, scheme="https")).status == 503
    assert pod.requests == 1
