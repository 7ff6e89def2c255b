"""The access log writer: valid JSON for any bytes, whole lines in order, never blocking the caller."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

from proxy.accesslog import PIPE_BUF, AccessLog, address_text, route_fields

LABELS = ("shop", "web", "*.example.com", "/api", "api", "Ingress")


def add(log: AccessLog, index: int, **changes: object) -> None:
    values = {"when": 1763866559.417, "request_id": b"id-%d" % index, "client": b"127.0.0.1", "method": b"GET",
              "host": b"a.example.com", "target": b"/api/items?x=1", "protocol": b"HTTP/1.1", "status": 200,
              "bytes_in": 80, "bytes_out": 512, "duration": 0.0012, "upstream_duration": 0.0009,
              "upstream": address_text("10.0.0.1", 8080), "route": route_fields(LABELS), "user_agent": b"curl/8",
              "retries": 0}
    values.update(changes)
    log.add(**values)  # type: ignore[arg-type]


def written(fd_for_log) -> list[dict]:
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    log = AccessLog(write_end, interval=0.01)
    fd_for_log(log)
    log.close()
    os.close(write_end)
    reader.join(timeout=10)
    os.close(read_end)
    lines = b"".join(chunks).splitlines(keepends=True)
    assert all(line.endswith(b"\n") and line.isascii() for line in lines)
    return [json.loads(line) for line in lines]


def test_fields_and_escaping():
    [entry] = written(lambda log: add(log, 1, host=b'evil"\\\x00\xff', target=b"/p\n?q=\"1\"", user_agent=None,
                                      upstream=address_text("fd00::1", 80), upstream_duration=-1.0,
                                      protocol=b"HTTP/1.0"))
    assert entry["host"] == 'evil"\\\x00\xff' and entry["path"] == "/p\n" and entry["query"] == 'q="1"'
    assert entry["upstream"] == "[fd00::1]:80" and entry["upstream_duration"] is None
    assert entry["protocol"] == "HTTP/1.0" and entry["user_agent"] == "" and entry["time"] == "2025-11-23T02:55:59.417Z"
    assert (entry["namespace"], entry["ingress"], entry["route_host"], entry["route_path"], entry["service"],
            entry["route_kind"]) == LABELS
    assert (entry["status"], entry["bytes_in"], entry["bytes_out"], entry["retries"]) == (200, 80, 512, 0)
    assert entry["duration"] == 0.0012 and entry["upstream_duration"] is None


def test_every_line_is_written_whole_and_in_order():
    def many(log: AccessLog) -> None:
        for index in range(2000):
            add(log, index, when=1763866559.417 + index / 100, upstream=None)

    entries = written(many)
    assert [e["request_id"] for e in entries] == [f"id-{i}" for i in range(2000)]
    assert entries[0]["time"] == "2025-11-23T02:55:59.417Z" and entries[-1]["time"] == "2025-11-23T02:56:19.407Z"
    assert entries[0]["upstream"] is None


def test_a_stdout_nobody_reads_never_blocks_the_caller():
    read_end, write_end = os.pipe()
    log = AccessLog(write_end, limit=1000, interval=0.01)
    try:
        for index in range(50_000):  # far more than the pipe and the queue hold: add() must still return
            add(log, index)
        deadline = time.monotonic() + 10
        while log.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.dropped > 0 and len(log.pending) <= 1000
    finally:
        os.close(read_end)  # the writer thread's blocked write fails now; it counts and goes on
        log.close()
        os.close(write_end)


def test_trace_and_span_ids_of_traced_requests():
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-01"
    plain, escaped, untraced = written(lambda log: (
        add(log, 1, trace=traceparent), add(log, 2, trace=traceparent, host=b"\xff"), add(log, 3)))
    for entry in (plain, escaped):
        assert (entry["trace_id"], entry["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "53995c3f42cd8ad8")
    assert untraced["trace_id"] is None and untraced["span_id"] is None


def test_the_plain_line_and_the_escaped_line_say_the_same():
    """The usual line is joined from ready fragments and digit tables, an escaped one %-formatted: both must give
    the same fields, for small and large numbers and durations under and over a second."""
    cases = [{}, {"status": 504, "bytes_in": 4095, "bytes_out": 4096, "retries": 2, "duration": 0.9999996,
                  "upstream_duration": 0.0, "grpc_status": 0},
             {"bytes_in": 10**9, "bytes_out": 123456789, "duration": 61.25, "upstream_duration": 1.5, "retries": 5000,
              "reason": "upstream-timeout", "when": 1763866559.9999, "grpc_status": 14}]
    plain = written(lambda log: [add(log, index, **case) for index, case in enumerate(cases)])
    escaped = written(lambda log: [add(log, index, user_agent=b"\xff", **case) for index, case in enumerate(cases)])
    for one, other in zip(plain, escaped, strict=True):
        assert other.pop("user_agent") == "\xff" and one.pop("user_agent") == "curl/8"
        assert one == other
    assert (plain[1]["duration"], plain[1]["upstream_duration"], plain[2]["duration"]) == (1.0, 0.0, 61.25)
    assert (plain[2]["bytes_in"], plain[2]["retries"], plain[2]["reason"]) == (10**9, 5000, "upstream-timeout")
    assert [entry["grpc_status"] for entry in plain] == [None, 0, 14]


def test_writes_are_cut_at_line_ends_within_pipe_buf():
    """Each write is at most PIPE_BUF bytes of whole lines (atomic on a pipe several workers share); a line longer
    than that is written alone. A SOCK_SEQPACKET socket keeps each write a message of its own."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with reader, writer:
        log = AccessLog(writer.fileno(), interval=3600)  # nothing written until close(): one batch
        for index in range(40):
            add(log, index, user_agent=b"x" * (5000 if index == 20 else 10))
        log.close()
        reader.settimeout(0)
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(reader.recv(65536))
    assert all(message.endswith(b"\n") for message in messages)
    assert [len(message.splitlines()) for message in messages if len(message) > PIPE_BUF] == [1]
    lines = b"".join(messages).splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"id-{i}" for i in range(40)]
    assert len(messages) < 40


def test_parts_kept_from_the_last_line_follow_every_change():
    """The usual line reuses the text around client/method/host, protocol/status and upstream/route from the line
    before: change each of them (and the query, the millisecond, the end) from one line to the next, and every line
    must still say what the escaped line, made from scratch, says."""
    other_route = route_fields(("other", "web", "", "/", "web", "HTTPRoute"))
    cases = [{}, {}, {"client": b"10.1.2.3"}, {"method": b"POST"}, {"host": b"b.example.com"}, {"host": None},
             {"target": b"/api/items"}, {"target": b"/?"}, {"status": 404}, {"protocol": b"HTTP/1.0"},
             {"upstream": None}, {"upstream": address_text("10.0.0.2", 80)}, {"route": other_route}, {"retries": 1},
             {"reason": "no-route"}, {"grpc_status": 12}, {"when": 1763866559.4181}, {"when": 1763866560.0}, {}]
    plain = written(lambda log: [add(log, index, **case) for index, case in enumerate(cases)])
    escaped = written(lambda log: [add(log, index, user_agent=b"\xff", **case) for index, case in enumerate(cases)])
    for one, other in zip(plain, escaped, strict=True):
        assert other.pop("user_agent") == "\xff" and one.pop("user_agent") == "curl/8"
        assert one == other
    assert [(e["client"], e["method"], e["host"]) for e in plain[1:6]] == [
        ("127.0.0.1", "GET", "a.example.com"), ("10.1.2.3", "GET", "a.example.com"),
        ("127.0.0.1", "POST", "a.example.com"), ("127.0.0.1", "GET", "b.example.com"), ("127.0.0.1", "GET", "")]
    assert [(e["path"], e["query"]) for e in plain[5:8]] == [("/api/items", "x=1"), ("/api/items", ""), ("/", "")]
    assert [e["status"] for e in plain[7:10]] == [200, 404, 200] and plain[9]["protocol"] == "HTTP/1.0"
    assert [e["upstream"] for e in plain[9:12]] == ["10.0.0.1:8080", None, "10.0.0.2:80"]
    assert plain[12]["route_kind"] == "HTTPRoute" and plain[13]["route_kind"] == "Ingress"
    assert [e["time"] for e in plain[15:]] == ["2025-11-23T02:55:59.417Z", "2025-11-23T02:55:59.418Z",
                                             "2025-11-23T02:56:00.000Z", "2025-11-23T02:55:59.417Z"]


def test_the_usual_line_byte_for_byte():
    """The exact line (key order, number forms) that log readers parse, for the usual request."""
    read_end, write_end = os.pipe()
    log = AccessLog(write_end, interval=3600)
    add(log, 7)
    log.close()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        line = reader.read()
    assert line == (
        b'{"time":"2025-11-23T02:55:59.417Z","request_id":"id-7","client":"127.0.0.1","method":"GET",'
        b'"host":"a.example.com","path":"/api/items","query":"x=1","protocol":"HTTP/1.1","status":200,"bytes_in":80,'
        b'"bytes_out":512,"duration":0.001200,"upstream_duration":0.000900,"upstream":"10.0.0.1:8080",'
        b'"namespace":"shop","ingress":"web","route_host":"*.example.com","route_path":"/api","service":"api",'
        b'"route_kind":"Ingress","user_agent":"curl/8","retries":0,"reason":null,"trace_id":null,"span_id":null,'
        b'"grpc_status":null}\n')


def test_unsafe_values_after_safe_ones_are_escaped():
    """Host and user agent are checked only when they differ from the last usual line's: an unsafe one after safe
    ones (and a safe one again after it) must still come out escaped, and every line valid JSON."""
    cases = [{}, {"user_agent": b'ua"\x01'}, {}, {"host": b"h\\\xfe"}, {}, {"request_id": b"id\n"},
             {"target": b"/\x7f?q=\xff"}, {"target": b"/p?"}, {"user_agent": None}, {"user_agent": b"curl/8"}]
    entries = written(lambda log: [add(log, index, **case) for index, case in enumerate(cases)])
    assert [entry["user_agent"] for entry in entries[:3]] == ["curl/8", 'ua"\x01', "curl/8"]
    assert [entry["host"] for entry in entries[2:5]] == ["a.example.com", "h\\\xfe", "a.example.com"]
    assert entries[5]["request_id"] == "id\n"
    assert [(entry["path"], entry["query"]) for entry in entries[6:8]] == [("/\x7f", "q=\xff"), ("/p", "")]
    assert [entry["user_agent"] for entry in entries[8:]] == ["", "curl/8"]
