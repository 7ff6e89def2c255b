"""The stateless HPACK encoder both HTTP/2 sides send headers with (proxy/upstream/hpack_encoder.py), checked by
an independent decoder (the ``hpack`` package's) and by real h2 clients through the proxy; and a client's GOAWAY
with a stream in flight.

RFC 7541 (HPACK): static-table references (6.1), literals without indexing (6.2.2), dynamic table size
updates (6.3, 4.2). ingress-nginx has no e2e case for HPACK; nginx itself sends responses the same way (static
table and literals, no dynamic table: ngx_http_v2_filter_module), which is what this reproduces. RFC 9113 6.8:
after a GOAWAY the streams already opened still complete or are reset, the connection is not broken.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from h2.settings import SettingCodes
from hpack import Decoder

from h2_client import H2Client
from proxy.upstream import hpack_encoder
from proxy.upstream.hpack_encoder import CACHE_LIMIT, PairEncoder, field, integer
from server_harness import Rule, cluster

APP = "default/app:80"

RESPONSE = [(b":status", b"200"), (b":status", b"418"), (b"content-type", b"text/plain"), (b"server", b"pod/1"),
            (b"x-request-id", b"0123456789abcdef0123456789abcdef"), (b"date", b"Thu, 03 Dec 2026 06:30:00 GMT"),
            (b"x-long", b"v" * 300), (b"content-length", b"100"), (b"x-empty", b""), (b"x-bin", bytes(range(256)))]


def test_blocks_decode_the_same_without_touching_the_decoders_dynamic_table() -> None:
    encoder, decoder = PairEncoder(), Decoder()
    first = encoder.encode(RESPONSE)
    assert first[:1] == b"\x20"  # a dynamic table size update to 0 starts the first block (RFC 7541 6.3)
    assert decoder.decode(first, raw=True) == RESPONSE
    again = encoder.encode(RESPONSE)
    assert again == first[1:]  # the same bytes: nothing depends on what was sent before
    assert decoder.decode(again, raw=True) == RESPONSE
    assert len(decoder.header_table.dynamic_entries) == 0
    assert field(b":status", b"200") == b"\x88"  # static index 8, fully indexed (6.1)
    assert integer(1337, 5, 0) == b"\x1f\x9a\x0a"  # RFC 7541 C.1.2


def test_a_table_size_change_is_answered_with_a_size_update_at_the_next_block() -> None:
    encoder, decoder = PairEncoder(), Decoder()
    decoder.decode(encoder.encode(RESPONSE[:2]), raw=True)
    encoder.header_table_size = 0  # the peer's SETTINGS_HEADER_TABLE_SIZE, as h2 sets it
    decoder.max_allowed_table_size = 0
    block = encoder.encode(RESPONSE)
    assert block[:1] == b"\x20"
    assert decoder.decode(block, raw=True) == RESPONSE
    assert encoder.encode(RESPONSE)[:1] != b"\x20"  # once only


def test_the_cache_is_bounded_and_keeps_no_unique_values() -> None:
    encoder, decoder = PairEncoder(), Decoder()
    for index in range(CACHE_LIMIT * 2 + 10):
        pairs = [(b"x-n", b"%d" % index), (b"x-request-id", b"id-%d" % index), (b"set-cookie", b"s=%d" % index)]
        assert decoder.decode(encoder.encode(pairs), raw=True) == pairs
    assert len(hpack_encoder._cache) <= CACHE_LIMIT
    assert not any(name in (b"x-request-id", b"set-cookie") for name, _ in hpack_encoder._cache)


@pytest.fixture
async def proxy_and_pod(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy, pod


async def test_clients_decode_every_response_and_keep_an_empty_table(proxy_and_pod, h2_clients):
    """A client with the default table and one that sets SETTINGS_HEADER_TABLE_SIZE 0 (its decoder then refuses
    any indexing): many responses on each, each with its own x-request-id."""
    proxy, _ = proxy_and_pod
    plain = await h2_clients(proxy.port)
    strict = await h2_clients(proxy.port)
    strict.conn.update_settings({SettingCodes.HEADER_TABLE_SIZE: 0})
    strict.flush()
    for client in (plain, strict):
        ids = [client.request(f"/n/{index}") for index in range(40)]
        responses = await asyncio.gather(*(client.response(stream_id) for stream_id in ids))
        assert [r.status for r in responses] == [200] * 40
        assert [r.json()["path"] for r in responses] == [f"/n/{index}" for index in range(40)]
        assert len({r.header(b"x-request-id") for r in responses}) == 40
        assert len(client.conn.decoder.header_table.dynamic_entries) == 0


async def test_client_goaway_with_a_stream_in_flight_closes_quietly(proxy_and_pod, h2_clients, caplog):
    """The client's GOAWAY while its request waits on the pod: the answer cannot be sent any more (h2 closed
    its side), the stream is dropped without an error and the connection closes; other clients are served."""
    proxy, _ = proxy_and_pod
    client = await h2_clients(proxy.port)
    stream_id = client.request("/slow?delay=0.3")
    await client.get("/warm")  # the slow request is in flight at the pod
    with caplog.at_level(logging.ERROR, logger="pyngress"):
        client.conn.close_connection()
        client.flush()
        await client.wait_closed()
    assert not client.streams[stream_id].body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    other = await H2Client.connect(proxy.port)
    try:
        assert (await other.get("/after")).status == 200
    finally:
        await other.close()
