"""The SNI reader of SSL passthrough on real ClientHellos (made by OpenSSL) and on broken ones."""

from __future__ import annotations

import random
import ssl

import pytest

from proxy.tls.client_hello import MAX_HELLO, NOT_TLS, ClientHello, ClientHelloReader, MalformedHello


def _hello(name: str | None) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    obj = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _records(hello: bytes, size: int) -> bytes:
    message = hello[5:]
    return b"".join(hello[:3] + len(piece).to_bytes(2, "big") + piece
                    for piece in (message[i:i + size] for i in range(0, len(message), size)))


@pytest.mark.parametrize("name", ["pass.example", "PASS.Example.", None])
def test_whole_hello(name):
    outcome = ClientHelloReader().feed(_hello(name))
    assert isinstance(outcome, ClientHello)
    assert outcome.server_name == ("pass.example" if name else "")


@pytest.mark.parametrize("record_size", [1, 7, 100, 1 << 14])
def test_split_over_records_and_single_byte_segments(record_size):
    data = _records(_hello("split.example"), record_size)
    reader = ClientHelloReader()
    outcomes = [reader.feed(data[i:i + 1]) for i in range(len(data))]
    assert all(outcome is None for outcome in outcomes[:-1])
    assert isinstance(outcomes[-1], ClientHello) and outcomes[-1].server_name == "split.example"
    assert bytes(reader.received) == data  # everything kept for the replay


def test_bytes_after_the_hello_are_kept():
    hello = _hello("a.example")
    reader = ClientHelloReader()
    outcome = reader.feed(hello + b"early")
    assert isinstance(outcome, ClientHello)
    assert bytes(reader.received) == hello + b"early"


def test_not_tls_is_told_at_the_first_byte():
    assert ClientHelloReader().feed(b"GET / HTTP/1.1\r\n") is NOT_TLS


@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # a ServerHello
    b"\x16\x02\x00\x00\x04\x01\x00\x00\x00",  # not a TLS record version
    b"\x16\x03\x01\x00\x00",  # an empty record
    b"\x16\x03\x01\x50\x00",  # a record over 2^14
    b"\x16\x03\x01\x00\x04\x01\x00\x00\x08\x17\x03\x03\x00\x01",  # application data inside the hello
    b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03",  # a ClientHello body too short for its fields
    b"\x16\x03\x01\x00\x04\x01\x02\x00\x00",  # a ClientHello over MAX_HELLO
])
def test_malformed(data):
    with pytest.raises(MalformedHello):
        ClientHelloReader().feed(data)


def test_malformed_server_name():
    hello = bytearray(_hello("abc.example"))
    at = hello.find(b"abc.example")
    hello[at:at + 3] = b"a\x01c"
    with pytest.raises(MalformedHello):
        ClientHelloReader().feed(bytes(hello))


def test_random_bytes_never_raise_anything_else():
    rng = random.Random(12)
    hello = _hello("fuzz.example")
    for _ in range(2000):
        data = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        reader = ClientHelloReader()
        try:
            reader.feed(bytes(data[:rng.randrange(len(data) + 1)]))
        except MalformedHello:
            pass
        assert len(reader.received) <= MAX_HELLO + 1024
