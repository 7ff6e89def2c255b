"""The proxy's own answers to gRPC requests are HTTP 200 with a grpc-status (gRPC's http-grpc-status-mapping.md,
as Envoy answers its own errors): the access log and the route's metrics record what was sent, 200, and the
log's ``grpc_status`` (Envoy's %GRPC_STATUS%) says which gRPC error it was. ingress-nginx makes no such answers
(its errors to gRPC clients are HTML pages), so there is no e2e case to follow; the choice is in the README."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import replace

import pytest

from proxy.accesslog import AccessLog
from proxy.routing.global_config import GlobalConfig
from proxy.routing.policies import HTTP2
from server_harness import Rule, cluster, make_config, read_head

GRPC = [("content-type", "application/grpc"), ("te", "trailers")]


@pytest.fixture
async def proxy(make_proxy, make_backend):
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()  # until the proxy gives up on it

    backend = await make_backend(hold)
    proxy = await make_proxy(upstream_read_timeout=0.3)  # /test.Echo/Held: 504, DEADLINE_EXCEEDED
    clusters = [cluster("default/none:80", []), cluster("default/held:80", [backend.endpoint])]
    rules = [Rule("", "/test.Echo/Unary", "default/none:80"), Rule("", "/test.Echo/Held", "default/held:80")]
    config = make_config(rules, clusters)
    # Host-less rules are ingress-nginx's default server, whose no-route answers are logged only with this key.
    logged = replace(GlobalConfig.from_settings(proxy.settings), enable_access_log_for_default_backend=True)
    proxy.publish_config(replace(config, global_config=logged), clusters)
    return proxy


class LogReader:
    """The access log written to a pipe and read by a thread (as tests/server reads it)."""

    def __init__(self, proxy) -> None:
        self.read_end, self.write_end = os.pipe()
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(
            target=lambda: self.chunks.extend(iter(lambda: os.read(self.read_end, 65536), b"")), daemon=True)
        self.thread.start()
        self.log = proxy.server.access_log = AccessLog(self.write_end, interval=0.01)

    def lines(self) -> list[dict]:
        self.log.close()
        os.close(self.write_end)
        self.thread.join(timeout=10)
        os.close(self.read_end)
        return [json.loads(line) for line in b"".join(self.chunks).splitlines()]


async def test_grpc_answers_are_logged_and_counted_as_200_with_their_grpc_status(proxy, h2_clients):
    log = LogReader(proxy)
    client = await h2_clients(proxy.port)
    answers = {}
    for path, extra in (("/test.Other/Call", []), ("/test.Echo/Unary", []),
                        ("/test.Echo/Held", [])):
        answer = await client.get(path, method="POST", headers=GRPC + extra)
        answers[path] = (answer.status, answer.header(b"grpc-status"))
    assert answers == {"/test.Other/Call": (200, b"12"), "/test.Echo/Unary": (200, b"14"),
                       "/test.Echo/Held": (200, b"4")}
    lines = log.lines()
    assert [(e["path"], e["status"], e["grpc_status"], e["reason"]) for e in lines] == [
        ("/test.Other/Call", 200, 12, "no-route"), ("/test.Echo/Unary", 200, 14, "no-endpoints"),
        ("/test.Echo/Held", 200, 4, "upstream-timeout")]
    statuses = {status for stats in proxy.server.traffic.routes() for (_, status) in stats.series}
    assert statuses == {200}  # no 404, 503 or 504 series: none was sent


async def test_a_plain_answer_has_no_grpc_status(proxy, h2_clients):
    log = LogReader(proxy)
    client = await h2_clients(proxy.port)
    assert (await client.get("/test.Echo/Unary")).status == 503  # not gRPC: the usual page
    (line,) = log.lines()
    assert (line["status"], line["grpc_status"]) == (503, None)


async def test_a_grpc_answer_ended_with_an_error_logs_its_grpc_status(make_proxy, make_h2_pod, h2_clients):
    """The pod begins a gRPC answer, then resets its stream: the proxy ends the answer with grpc-status 14 in
    trailers (README, "To pods"); the log says status 200 (the pod's) and grpc_status 14."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    proxy.publish([Rule("", "/", "default/h2:80")], [cluster("default/h2:80", [(pod.host, pod.port)], protocol=HTTP2)])
    log = LogReader(proxy)
    client = await h2_clients(proxy.port)
    answer = await client.get("/partial", method="POST", headers=GRPC, body=b"x")
    assert (answer.status, dict(answer.trailers).get(b"grpc-status")) == (200, b"14")
    (line,) = log.lines()
    assert (line["status"], line["grpc_status"]) == (200, 14)


# ------------------------------------------------------------------ the pod's own gRPC status


def _pod_lines(lines: list[dict]) -> list[tuple[str, int, int | None]]:
    return [(line["path"], line["status"], line["grpc_status"]) for line in lines]


async def test_a_grpc_pods_own_status_is_logged(make_proxy, grpc_pod, h2_clients):
    """Envoy's %GRPC_STATUS% (its access-log docs: the trailers' grpc-status, else the headers', else the HTTP
    status mapped as gRPC's http-grpc-status-mapping.md does): a real grpcio pod's OK in trailers, its error
    (context.abort) and an unknown method's UNIMPLEMENTED, both trailers-only answers (PROTOCOL-HTTP2.md)."""
    from h2_pods import frame

    proxy = await make_proxy()
    key = "default/grpc:50051"
    proxy.publish([Rule("", "/", key)], [cluster(key, [(grpc_pod.host, grpc_pod.port)], protocol=HTTP2)])
    log = LogReader(proxy)
    client = await h2_clients(proxy.port)
    answers = []
    for method, message in (("Unary", b"hi"), ("Unary", b"fail:no"), ("Nope", b"x")):
        answer = await client.get(f"/test.Echo/{method}", method="POST", headers=GRPC, body=frame(message))
        answers.append((answer.status, answer.header(b"grpc-status") or dict(answer.trailers).get(b"grpc-status")))
    assert answers == [(200, b"0"), (200, b"9"), (200, b"12")]
    assert _pod_lines(log.lines()) == [("/test.Echo/Unary", 200, 0), ("/test.Echo/Unary", 200, 9),
                                       ("/test.Echo/Nope", 200, 12)]


async def test_a_grpc_status_is_logged_for_an_http11_client_that_takes_no_trailers(make_proxy, grpc_pod):
    """The pod's status is what the log says even when an HTTP/1.1 client without `TE: trailers` gets no trailers
    (the status is the pod's answer, as Envoy logs the upstream's trailers)."""
    from h2_pods import grpc_call

    proxy = await make_proxy()
    key = "default/grpc:50051"
    proxy.publish([Rule("", "/", key)], [cluster(key, [(grpc_pod.host, grpc_pod.port)], protocol=HTTP2)])
    log = LogReader(proxy)
    for message in (b"fine", b"fail:precondition"):
        await grpc_call(proxy.port, "Unary", message, te=False)
    assert _pod_lines(log.lines()) == [("/test.Echo/Unary", 200, 0), ("/test.Echo/Unary", 200, 9)]


async def test_a_pod_answer_without_grpc_status_is_logged_as_its_http_status_means(make_proxy, make_h2_pod,
                                                                                  h2_clients):
    """A gRPC request answered by the pod with no grpc-status: a 503 is UNAVAILABLE (14), a 200 that never says is
    UNKNOWN (2), a grpc-status that is no number is UNKNOWN too (http-grpc-status-mapping.md, as Envoy infers it);
    trailers sent after a body (/trailers: grpc-status 0) win over the head. A plain request gets null."""
    proxy = await make_proxy()
    pod = await make_h2_pod()
    proxy.publish([Rule("", "/", "default/h2:80")], [cluster("default/h2:80", [(pod.host, pod.port)], protocol=HTTP2)])
    log = LogReader(proxy)
    client = await h2_clients(proxy.port)
    statuses = []
    for path, headers in (("/unavailable", GRPC), ("/echo", GRPC), ("/bad-status", GRPC), ("/trailers", GRPC),
                          ("/unavailable", [])):
        statuses.append((await client.get(path, method="POST", headers=headers, body=b"x")).status)
    assert statuses == [503, 200, 200, 200, 503]
    assert _pod_lines(log.lines()) == [("/unavailable", 503, 14), ("/echo", 200, 2), ("/bad-status", 200, 2),
                                       ("/trailers", 200, 0), ("/unavailable", 503, None)]
