"""The same protocol serves a TLS listener: scheme and port in the forwarded headers, streaming, WebSocket."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.settings import Settings
from proxy.tls import native as native_tls
from proxy.tls.native import available
from server_harness import Rule, cluster, read_response

APP = "default/app:80"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


# The asyncio TLS path always; --tls-transport native (proxy/tls/native.py) where it is compiled.
TRANSPORTS_HERE = ("asyncio", "native") if available()[0] else ("asyncio",)


@pytest.fixture(params=TRANSPORTS_HERE)
async def tls_proxy(make_proxy, make_pods, certificate, request):
    (pod,) = await make_pods("a")
    proxy = await make_proxy(tls_transport=request.param)
    proxy.publish([Rule("secure.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    await proxy.server.start_https(server_context, port=0)
    (listener,) = [listener for listener in proxy.server.listeners if listener.tls]
    assert (listener.native is not None) == (request.param == "native")
    client_context = ssl.create_default_context(cafile=certificate[0])
    return proxy, client_context


async def test_https_listener_forwards_with_https_scheme(tls_proxy):
    proxy, context = tls_proxy
    port = proxy.server.https_port
    assert port and port != proxy.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="secure.example")
    for _ in range(3):  # keep-alive over TLS
        writer.write(b"GET /x HTTP/1.1\r\nHost: secure.example\r\n\r\n")
        data = (await read_response(reader)).json()
        forwarded = {k: v for k, v in data["headers"] if k.startswith("X-Forwarded")}
        assert forwarded["X-Forwarded-Proto"] == "https"
        assert forwarded["X-Forwarded-Port"] == str(port)
    writer.write(b"GET /download?size=5000000&chunked=1 HTTP/1.1\r\nHost: secure.example\r\n\r\n")
    assert len((await read_response(reader)).body) == 5000000
    writer.close()
    # The plain listener still says http.
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: secure.example\r\n\r\n")
    data = (await read_response(reader)).json()
    assert dict(data["headers"])["X-Forwarded-Proto"] == "http"
    plain, tls = proxy.server.listeners
    assert (plain.scheme, tls.scheme) == ("http", "https")
    assert (plain.total_connections, tls.total_connections) == (1, 1)
    assert plain.active_connections == 1
    writer.close()


async def test_websocket_over_tls(tls_proxy):
    proxy, context = tls_proxy
    url = f"https://127.0.0.1:{proxy.server.https_port}/ws"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, ssl=context, server_hostname="secure.example",
                                      headers={"Host": "secure.example"}) as ws:
            await ws.send_str("over tls")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.data == "a:over tls"


async def test_bad_request_over_tls_is_answered_and_closed(tls_proxy):
    proxy, context = tls_proxy
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", proxy.server.https_port, ssl=context, server_hostname="secure.example"
    )
    writer.write(b"NOT HTTP\r\n\r\n")
    async with asyncio.timeout(5):
        data = await reader.read(65536)
    assert data.startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_native_transport_falls_back_to_asyncio_with_one_warning(make_proxy, make_pods, certificate, caplog):
    """--tls-transport native where it cannot serve (pure-Python mode, or a listener context with a Python SNI
    callback, which expects the ssl module's own SSL objects): the asyncio path serves, one warning says why."""
    native_tls.warn_fallback.cache_clear()
    (pod,) = await make_pods("a")
    proxy = await make_proxy(tls_transport="native")
    proxy.publish([Rule("secure.example", "/", APP)], [cluster(APP, [pod.endpoint])])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    server_context.sni_callback = lambda *_: None
    with caplog.at_level(logging.WARNING, logger="pyngress.tls"):
        await proxy.server.start_https(server_context, port=0)
    (listener,) = [listener for listener in proxy.server.listeners if listener.tls]
    assert listener.native is None and listener.acceptor is not None
    warnings = [record.getMessage() for record in caplog.records if "--tls-transport native" in record.getMessage()]
    assert len(warnings) == 1 and "asyncio" in warnings[0]
    await _served_over_tls(proxy, certificate)


async def _served_over_tls(proxy, certificate) -> None:
    """One GET to secure.example over a verified TLS connection to the proxy's HTTPS port: 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.https_port,
                                                   ssl=ssl.create_default_context(cafile=certificate[0]),
                                                   server_hostname="secure.example")
    writer.write(b"GET /x HTTP/1.1\r\nHost: secure.example\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.close()


def _transport_lines(caplog) -> tuple[list[str], list[str]]:
    """pyngress.tls's INFO lines naming the HTTPS listeners' transport, and its warnings."""
    records = [record for record in caplog.records if record.name == "pyngress.tls"]
    lines = [record.getMessage() for record in records
             if record.levelno == logging.INFO and record.getMessage().startswith("HTTPS listeners use")]
    return lines, [record.getMessage() for record in records if record.levelno >= logging.WARNING]


async def _https(proxy, certificate, context_setup=None):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    if context_setup is not None:
        context_setup(server_context)
    await proxy.server.start_https(server_context, port=0)
    (listener,) = [listener for listener in proxy.server.listeners if listener.tls]
    return listener


async def test_auto_serves_with_native_where_compiled_and_says_so_once(make_proxy, make_pods, certificate, caplog):
    """--tls-transport auto (the default): the native transport wherever it can serve (compiled builds), asyncio in
    pure-Python mode; one INFO line per process says which (and why asyncio), never a warning."""
    native_tls.announce.cache_clear()
    assert Settings().tls_transport == "auto"
    (pod,) = await make_pods("a")
    compiled, problem = available()
    with caplog.at_level(logging.INFO, logger="pyngress.tls"):
        listeners = []
        for _ in range(2):  # a second proxy in the same process: no second line
            proxy = await make_proxy(tls_transport="auto")
            proxy.publish([Rule("secure.example", "/", APP)], [cluster(APP, [pod.endpoint])])
            listeners.append((proxy, await _https(proxy, certificate)))
    lines, warnings = _transport_lines(caplog)
    assert warnings == []
    if compiled:
        assert lines == ["HTTPS listeners use the native TLS transport (--tls-transport auto)"]
    else:
        assert lines == [f"HTTPS listeners use the asyncio TLS transport (--tls-transport auto: {problem})"]
    for proxy, listener in listeners:
        assert (listener.native is not None) == compiled and (listener.acceptor is None) == compiled
        await _served_over_tls(proxy, certificate)


def _keylog(tmp_path):
    def setup(context: ssl.SSLContext) -> None:
        context.keylog_filename = str(tmp_path / "keys.log")

    return setup


@pytest.mark.parametrize("case", ["proxy_protocol", "ssl_passthrough", "sni_callback", "keylog"])
async def test_auto_keeps_asyncio_where_native_cannot_serve_without_a_warning(make_proxy, certificate, caplog,
                                                                             tmp_path, case):
    """What the native transport does not serve keeps the asyncio path under auto, silently but for the INFO line:
    PROXY protocol and passthrough listeners (their first bytes are read before TLS), a listener context whose
    `_ssl` callbacks (a Python SNI callback, a key log) expect the ssl module's own SSL objects."""
    native_tls.announce.cache_clear()
    settings = {case: True} if case in ("proxy_protocol", "ssl_passthrough") else {}
    setup = {"sni_callback": lambda context: setattr(context, "sni_callback", lambda *_: None),
             "keylog": _keylog(tmp_path)}.get(case)
    proxy = await make_proxy(tls_transport="auto", **settings)
    with caplog.at_level(logging.INFO, logger="pyngress.tls"):
        listener = await _https(proxy, certificate, setup)
    assert listener.native is None
    lines, warnings = _transport_lines(caplog)
    assert warnings == []
    assert len(lines) == 1 and lines[0].startswith("HTTPS listeners use the asyncio TLS transport (--tls-transport "
                                                   "auto: ")
    compiled, problem = available()
    why = {"proxy_protocol": "PROXY protocol", "ssl_passthrough": "passthrough", "sni_callback": "SNI callback",
           "keylog": "key log"}[case] if compiled or case in ("proxy_protocol", "ssl_passthrough") else problem
    assert why in lines[0]


async def test_explicit_asyncio_never_takes_native(make_proxy, certificate, caplog):
    native_tls.announce.cache_clear()
    proxy = await make_proxy(tls_transport="asyncio")
    with caplog.at_level(logging.INFO, logger="pyngress.tls"):
        listener = await _https(proxy, certificate)
    assert listener.native is None and listener.acceptor is not None
    assert _transport_lines(caplog) == (["HTTPS listeners use the asyncio TLS transport (--tls-transport asyncio)"],
                                        [])
