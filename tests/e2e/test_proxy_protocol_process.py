"""`pyngress --proxy-protocol --use-forwarded-headers` as a real process with two workers (SO_REUSEPORT on the
PROXY listeners): a balancer's v1/v2 header on the HTTP and HTTPS ports, the client address at the pod and in
the access log (ingress-nginx's test/e2e/settings/proxy_protocol.go, over the flags its ConfigMap keys map to).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct

from e2e_harness import DEADLINE, INGRESS_CLASS, eventually, ingress, scrape, service

HOST = "pp.example.test"
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(source: str, dport: int) -> bytes:
    block = socket.inet_aton(source) + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 40000, dport)
    return SIGNATURE + b"\x21\x11" + struct.pack("!H", len(block)) + block


async def exchange(port: int, header: bytes, request: bytes, *, tls: bool = False) -> bytes:
    """Header, then (over TLS when asked) one request with Connection: close; everything answered (b"": none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(header)
        await writer.drain()
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the default self-signed certificate
            await writer.start_tls(context, server_hostname=HOST)
        writer.write(request)
        async with asyncio.timeout(DEADLINE):
            return await reader.read()
    except ConnectionResetError:  # closed with our request unread: a reset, and no answer
        return b""
    finally:
        writer.close()


def pod_headers(answer: bytes) -> dict[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)["headers"]


async def test_proxy_protocol_and_trusted_forwarded_headers_in_a_real_process(echo_pods, manifests, pyngress):
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[web]))
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    proc = await pyngress(manifests.path, "--workers", "2", "--proxy-protocol", "--use-forwarded-headers",
                          "--proxy-real-ip-cidr", "10.0.0.0/8,192.168.0.1")
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    trusted = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: 203.0.113.50\r\nConnection: close\r\n\r\n".encode()

    headers = pod_headers(await exchange(proc.ports["http"], b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 80\r\n",
                                         request))
    assert headers["x-real-ip"] == headers["x-forwarded-for"] == "198.51.100.7"
    assert headers["x-forwarded-port"] == "80"
    headers = pod_headers(await exchange(proc.ports["https"], v2("198.51.100.8", 443), request, tls=True))
    assert headers["x-real-ip"] == "198.51.100.8" and headers["x-forwarded-proto"] == "https"
    # The balancer's own address is a trusted proxy: the client is the one its X-Forwarded-For names.
    headers = pod_headers(await exchange(proc.ports["http"], v2("192.168.0.1", 80), trusted))
    assert headers["x-real-ip"] == headers["x-forwarded-for"] == "203.0.113.50"
    # No header: closed without an answer, and counted (the control process adds up its workers' counts).
    assert await exchange(proc.ports["http"], b"", request) == b""
    await eventually(lambda: _rejected(proc))
    records = await proc.access_log(3)
    assert sorted(record["client"] for record in records) == ["198.51.100.7", "198.51.100.8", "203.0.113.50"]


async def _rejected(proc) -> bool:
    return await scrape(proc, "pyngress_proxy_protocol_rejected_total", listener="http") == 1
