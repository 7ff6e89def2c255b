"""1xx answers of HTTP/2 pods (103 Early Hints, 100 Continue) reach the client before the final answer, as HTTP/1.1
pods' do (issue 13 follow-up): to HTTP/1.1 clients as interim status lines, to HTTP/2 clients as HEADERS frames.

Behaviour reproduced: RFC 9110 15.2 (a proxy forwards 1xx responses; HTTP/2 has no 101) and RFC 8297 (103 Early
Hints). ingress-nginx has no e2e test of 1xx answers (its snapshot has no mention of Early Hints); the HTTP/1.1
pod's 100 Continue is tests/server/test_forwarding.py test_expect_100_continue_is_forwarded.
"""

from __future__ import annotations

import asyncio
import json

from proxy.routing.policies import HTTP2
from server_harness import Rule, cluster, connect, read_response

H2_KEY = "default/h2:80"


async def h2_pod_behind_proxy(make_proxy, make_h2_pod):
    pod = await make_h2_pod()
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", H2_KEY)], [cluster(H2_KEY, [(pod.host, pod.port)], protocol=HTTP2)])
    return proxy, pod


async def test_early_hints_of_an_h2_pod_reach_an_http11_client(make_proxy, make_h2_pod):
    proxy, _ = await h2_pod_behind_proxy(make_proxy, make_h2_pod)
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"GET /hints HTTP/1.1\r\nHost: h2.example\r\n\r\n")
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 103 Early Hints\r\n"), interim
        assert b"link: </style.css>; rel=preload\r\n" in interim.lower()
        response = await read_response(reader)
        assert response.status == 200 and response.body == b"hinted"
    finally:
        writer.close()


async def test_100_continue_of_an_h2_pod_lets_an_http11_client_send_its_body(make_proxy, make_h2_pod):
    proxy, pod = await h2_pod_behind_proxy(make_proxy, make_h2_pod)
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"PUT /echo HTTP/1.1\r\nHost: h2.example\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")  # the client waits for it before sending the body
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        writer.write(b"data")
        response = await read_response(reader)
        assert response.status == 200 and json.loads(response.body)["body"] == "data"
        assert pod.seen[-1]["expect"] == "100-continue"
    finally:
        writer.close()


async def test_early_hints_of_an_h2_pod_reach_an_h2_client(make_proxy, make_h2_pod, h2_clients):
    proxy, _ = await h2_pod_behind_proxy(make_proxy, make_h2_pod)
    client = await h2_clients(proxy.port)
    response = await client.get("/hints", authority="h2.example")
    assert response.status == 200 and bytes(response.body) == b"hinted"
    assert response.interim == [[(b":status", b"103"), (b"link", b"</style.css>; rel=preload")]]
