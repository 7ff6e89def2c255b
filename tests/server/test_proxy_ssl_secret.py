"""ingress-nginx's proxy-ssl-secret end to end: an Ingress + its Secret → the real builder → the real proxy →
HTTPS pods that check our client certificate (annotations.md "Backend Certificate Authentication";
proxyssl.go "should set valid proxy-ssl-secret, proxy-ssl-verify to on, proxy-ssl-verify-depth to 2, and
proxy-ssl-server-name to on")."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from backend_pods import HealthPod, Pki, root_pem, server_context
from server_harness import request
from test_nginx_annotations import ingress, serve

HOST = "proxyssl.foo.com"
NAME = "secure.internal"


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path, name="pods")


def tls_secret(**data: bytes) -> dict[tuple[str, str], Any]:
    return {("default", "backend-tls"): {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "backend-tls", "namespace": "default"},
        "data": {key.replace("_", "."): base64.b64encode(value).decode() for key, value in data.items()}}}


async def test_the_secrets_ca_verifies_the_pod_and_its_key_pair_is_our_client_certificate(make_proxy, pki,
                                                                                          tmp_path):
    names: list[str] = []
    pod = await HealthPod("secure", "127.0.0.2", context=server_context(pki.leaf(NAME), client_ca=root_pem(pki),
                                                                      names=names)).start()
    try:
        proxy = await make_proxy(upstream_retries=1)
        client = pki.leaf("pyngress-client")
        annotations = {"backend_protocol": "HTTPS", "proxy_ssl_secret": "default/backend-tls",
                       "proxy_ssl_verify": "on", "proxy_ssl_name": NAME, "proxy_ssl_server_name": "on"}
        config = serve(proxy, [pod], ingress("tls", HOST, ("/", "Prefix", "secure"), **annotations),
                       secrets=tls_secret(ca_crt=root_pem(pki), tls_crt=client.chain_pem, tls_key=client.key_pem))
        assert [w for w in config.warnings if w.name == "tls"] == []
        response = await request(proxy.port, "/", host=HOST)
        assert response.status == 200 and response.json()["pod"] == "secure"
        assert pod.client_subjects == ["pyngress-client"] and names == [NAME]

        # A CA that did not sign the pod's certificate: the handshake fails (502), nothing is sent unverified.
        (tmp_path / "other").mkdir(exist_ok=True)
        other = Pki(tmp_path / "other", name="other")
        serve(proxy, [pod], ingress("tls", HOST, ("/", "Prefix", "secure"), **annotations),
              secrets=tls_secret(ca_crt=root_pem(other), tls_crt=client.chain_pem, tls_key=client.key_pem))
        assert (await request(proxy.port, "/", host=HOST)).status == 502

        # The Secret gone: 503 (fail closed, ingress-nginx's denied location), the pod never reached.
        serve(proxy, [pod], ingress("tls", HOST, ("/", "Prefix", "secure"), **annotations))
        assert (await request(proxy.port, "/", host=HOST)).status == 503
        assert pod.client_subjects == ["pyngress-client"]
    finally:
        await pod.stop()
