"""TLS to the pods at the pool level: real HTTPS servers with certificates made here; verification passing
and failing by reason, SNI, SANs, mutual TLS, encryption only, connection reuse, and the Upstream's wiring."""

from __future__ import annotations

import ssl
from datetime import timedelta

import pytest

from backend_servers import NOW, HttpServer, Pki, client_leaf, leaf_with, raw_get, root_pem, server_context
from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import BackendTLS, ClusterPolicy
from proxy.settings import Settings
from proxy.upstream import tls as upstream_tls
from proxy.upstream.cluster import Upstream
from proxy.upstream.pool import EndpointPool, TlsEndpointPool
from proxy.upstream.tls import ClientContexts, HandshakeError, UpstreamTLS, client_context, san_matches
from tcp_listener import wait_until

SERVICE_NAME = "web.default.svc"


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path, name="backend")


@pytest.fixture
def other_pki(tmp_path):
    (tmp_path / "other").mkdir()
    return Pki(tmp_path / "other", name="someone else")


@pytest.fixture
async def make_server():
    servers: list[HttpServer] = []

    async def start(host: str = "127.0.0.2", **kwargs) -> HttpServer:
        server = await HttpServer(host, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def tls_pool(server: HttpServer, policy: BackendTLS, *, server_name: str = SERVICE_NAME,
             connect_timeout: float = 5.0) -> TlsEndpointPool:
    tls = UpstreamTLS(policy, context=ClientContexts().get(policy), server_name=server_name)
    return TlsEndpointPool(Endpoint(*server.endpoint), tls=tls, connect_timeout=connect_timeout)


def failures(reason: str) -> int:
    return upstream_tls.STATS.failures.get(reason, 0)


async def test_verified_connection_is_reused_from_the_pool(pki, make_server):
    names: list[str] = []
    server = await make_server(context=server_context(pki.leaf(SERVICE_NAME), names=names))
    pool = tls_pool(server, BackendTLS(ca=root_pem(pki)))
    completed = upstream_tls.STATS.completed
    conn = await pool.connect()
    assert conn.transport.get_extra_info("ssl_object") is not None
    assert (await raw_get(conn)).startswith(b"HTTP/1.1 200")
    pool.release(conn)
    again = pool.acquire()
    assert again is conn  # the pool keeps TLS connections like plain ones
    assert (await raw_get(again)).startswith(b"HTTP/1.1 200")
    assert server.connections == 1 and len(server.requests) == 2
    assert names == [SERVICE_NAME]  # SNI: the Service's DNS name when the policy names none
    assert server.alpn == ["http/1.1"]
    assert upstream_tls.STATS.completed == completed + 1
    pool.close()


@pytest.mark.parametrize(("leaf_kind", "reason"), [
    ("other_ca", "unknown_ca"),
    ("wrong_name", "name_mismatch"),
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
])
async def test_verification_failures_are_connect_errors_counted_by_reason(pki, other_pki, make_server, caplog,
                                                                          leaf_kind, reason):
    leaf = {
        "other_ca": lambda: other_pki.leaf(SERVICE_NAME),
        "wrong_name": lambda: pki.leaf("api.default.svc"),
        "expired": lambda: leaf_with(pki, dns=(SERVICE_NAME,), not_before=NOW - timedelta(days=3),
                                     not_after=NOW - timedelta(days=1)),
        "not_yet_valid": lambda: leaf_with(pki, dns=(SERVICE_NAME,), not_before=NOW + timedelta(days=1),
                                           not_after=NOW + timedelta(days=3)),
    }[leaf_kind]()
    server = await make_server(context=server_context(leaf))
    pool = tls_pool(server, BackendTLS(ca=root_pem(pki)))
    before = failures(reason)
    with caplog.at_level("WARNING", logger="pyngress.proxy"):
        with pytest.raises(HandshakeError) as caught:
            await pool.connect()
    assert caught.value.reason == reason and caught.value.status == 502
    assert failures(reason) == before + 1
    assert reason in str(caught.value) and f"{server.host}:{server.port}" in str(caught.value)
    assert [r for r in caplog.records if reason in r.getMessage()]  # logged with the reason
    # The next failure for the same reason is logged at debug only (it is in every 502's log line anyway).
    caplog.clear()
    with caplog.at_level("WARNING", logger="pyngress.proxy"), pytest.raises(HandshakeError):
        await pool.connect()
    assert not caplog.records
    assert failures(reason) == before + 2


async def test_subject_alt_names_are_checked_instead_of_the_sni_name(pki, make_server):
    names: list[str] = []
    leaf = leaf_with(pki, dns=("pod-1.web.internal",), uris=("spiffe://cluster.local/ns/default/sa/web",))
    server = await make_server(context=server_context(leaf, names=names))
    wanted_uri = BackendTLS(sni="web.example.com", ca=root_pem(pki),
                            subject_alt_names=("spiffe://cluster.local/ns/default/sa/web",))
    conn = await tls_pool(server, wanted_uri).connect()
    assert (await raw_get(conn)).startswith(b"HTTP/1.1 200")
    conn.close()
    assert names == ["web.example.com"]  # the policy's SNI is sent, though the certificate does not carry it

    wanted_dns = BackendTLS(sni="web.example.com", ca=root_pem(pki), subject_alt_names=("other.web.internal",
                                                                                       "POD-1.web.internal"))
    (await tls_pool(server, wanted_dns).connect()).close()

    before = failures("name_mismatch")
    wrong = BackendTLS(sni="web.example.com", ca=root_pem(pki), subject_alt_names=("web.example.com",))
    with pytest.raises(HandshakeError, match=r"match none of web\.example\.com") as caught:
        await tls_pool(server, wrong).connect()
    assert caught.value.reason == "name_mismatch"
    assert failures("name_mismatch") == before + 1


async def test_sni_name_is_verified_when_no_san_is_given(pki, make_server):
    server = await make_server(context=server_context(pki.leaf("web.example.com")))
    (await tls_pool(server, BackendTLS(sni="web.example.com", ca=root_pem(pki))).connect()).close()
    with pytest.raises(HandshakeError) as caught:
        await tls_pool(server, BackendTLS(sni="api.example.com", ca=root_pem(pki))).connect()
    assert caught.value.reason == "name_mismatch"


async def test_without_verification_any_certificate_is_accepted(other_pki, make_server):
    server = await make_server(context=server_context(other_pki.leaf("anything")))
    conn = await tls_pool(server, BackendTLS(verify=False, subject_alt_names=("ignored",))).connect()
    assert (await raw_get(conn)).startswith(b"HTTP/1.1 200")
    conn.close()


async def test_mutual_tls_presents_the_client_certificate(pki, make_server):
    client = client_leaf(pki, "pyngress-gateway")
    server = await make_server(context=server_context(pki.leaf(SERVICE_NAME), client_ca=root_pem(pki)))
    policy = BackendTLS(ca=root_pem(pki), client_certificate=client.chain_pem, client_key=client.key_pem)
    conn = await tls_pool(server, policy).connect()
    assert (await raw_get(conn)).startswith(b"HTTP/1.1 200")
    conn.close()
    assert server.client_subjects == ["pyngress-gateway"]


async def test_mutual_tls_without_a_client_certificate_never_gets_an_answer(pki, make_server):
    server = await make_server(context=server_context(pki.leaf(SERVICE_NAME), client_ca=root_pem(pki)))
    pool = tls_pool(server, BackendTLS(ca=root_pem(pki)))
    # TLS 1.2 refuses in the handshake; TLS 1.3 finishes our side and refuses on the first request.
    with pytest.raises((HandshakeError, ConnectionError, ssl.SSLError)):
        conn = await pool.connect()
        await raw_get(conn)
    assert not server.requests


async def test_a_plain_http_pod_is_not_tls(make_server):
    server = await make_server()
    before = failures("not_tls")
    with pytest.raises(HandshakeError) as caught:
        await tls_pool(server, BackendTLS(verify=False)).connect()
    assert caught.value.reason == "not_tls"
    assert failures("not_tls") == before + 1


async def test_a_silent_pod_times_out_in_the_handshake(make_listener):
    listener = await make_listener("127.0.0.2")  # accepts and never speaks TLS
    policy = BackendTLS(verify=False)
    tls = UpstreamTLS(policy, context=client_context(policy), server_name=SERVICE_NAME)
    pool = TlsEndpointPool(Endpoint(listener.host, listener.port), tls=tls, connect_timeout=0.2)
    before = failures("timeout")
    with pytest.raises(HandshakeError) as caught:
        await pool.connect()
    assert caught.value.reason == "timeout" and failures("timeout") == before + 1
    await wait_until(lambda: listener.closed == 1)


async def test_a_policy_whose_ca_cannot_be_loaded_fails_every_dial(make_listener, caplog):
    listener = await make_listener("127.0.0.2")
    policy = BackendTLS(ca=b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    with caplog.at_level("WARNING", logger="pyngress.proxy"):
        context = ClientContexts().get(policy)
    assert isinstance(context, str) and "CA bundle" in context
    assert [r for r in caplog.records if "CA bundle" in r.getMessage()]
    pool = TlsEndpointPool(Endpoint(listener.host, listener.port),
                           tls=UpstreamTLS(policy, context=context, server_name=SERVICE_NAME))
    with pytest.raises(HandshakeError, match="cannot be loaded") as caught:
        await pool.connect()
    assert caught.value.reason == "config"


def test_a_client_certificate_that_cannot_be_loaded_is_a_config_error(pki):
    client = pki.leaf("pyngress")
    other = pki.leaf("other")
    mismatched = BackendTLS(ca=root_pem(pki), client_certificate=client.chain_pem, client_key=other.key_pem)
    context = ClientContexts().get(mismatched)
    assert isinstance(context, str) and "client certificate" in context


def test_client_contexts_are_built_once_per_policy_and_forgotten_when_unused(pki):
    contexts = ClientContexts()
    first = BackendTLS(ca=root_pem(pki))
    same = BackendTLS(ca=root_pem(pki))
    second = BackendTLS(verify=False)
    contexts.prepare([first, second])
    assert len(contexts) == 2
    assert contexts.get(same) is contexts.get(first)
    context = contexts.get(first)
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not contexts.get(BackendTLS(ca=root_pem(pki), subject_alt_names=("x",))).check_hostname
    contexts.retain([second])
    assert len(contexts) == 1 and contexts.get(second).verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(("kind", "value", "wanted", "matches"), [
    ("DNS", "web.internal", "web.internal", True),
    ("DNS", "WEB.internal.", "web.internal", True),
    ("DNS", "*.internal", "web.internal", True),
    ("DNS", "*.internal", "a.web.internal", False),  # one label only
    ("DNS", "*.internal", "internal", False),
    ("DNS", "web.internal", "*.internal", False),
    ("URI", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", True),
    ("URI", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c", False),
    ("DNS", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", False),  # a URI is only matched by a URI SAN
    ("IP Address", "10.0.0.1", "10.0.0.1", True),
    ("IP Address", "2001:DB8:0:0:0:0:0:1\n", "2001:db8::1", True),
    ("IP Address", "10.0.0.1", "web.internal", False),
])
def test_san_matching(kind, value, wanted, matches):
    assert san_matches(kind, value, wanted) is matches


async def test_upstream_dials_tls_only_for_clusters_whose_policy_has_it(pki, make_server):
    names: list[str] = []
    server = await make_server(context=server_context(pki.leaf("web.default.svc", "web.example.com"), names=names))
    settings = Settings(upstream_connect_timeout=5)
    plain = Cluster(key="default/web:443", namespace="default", service="web", port="443",
                    endpoints=(Endpoint(*server.endpoint),))
    upstream = Upstream(plain, settings=settings)
    (pool,) = upstream.pools
    assert type(pool) is EndpointPool and pool.tls is None and upstream.tls is None

    policy = ClusterPolicy(tls=BackendTLS(ca=root_pem(pki)))
    upstream.update(Cluster(key="default/web:443", namespace="default", service="web", port="443",
                            endpoints=(Endpoint(*server.endpoint),), policy=policy))
    (tls_pool_,) = upstream.pools
    assert isinstance(tls_pool_, TlsEndpointPool) and pool.retired  # a plain pool is never reused for TLS
    assert upstream.tls is not None and upstream.tls.server_name == SERVICE_NAME
    conn = await tls_pool_.connect()
    tls_pool_.release(conn)
    # Same policy, endpoints moved: the TLS pool and its warm connection stay.
    upstream.update(Cluster(key="default/web:443", namespace="default", service="web", port="443",
                            endpoints=(Endpoint(*server.endpoint), Endpoint("127.0.0.3", 443)), policy=policy))
    assert upstream.pools[0] is tls_pool_ and list(tls_pool_.idle) == [conn]
    # An SNI given by the policy replaces the Service name; the pool changes with its TLS.
    sni = ClusterPolicy(tls=BackendTLS(sni="web.example.com", ca=root_pem(pki)))
    upstream.update(Cluster(key="default/web:443", namespace="default", service="web", port="443",
                            endpoints=(Endpoint(*server.endpoint),), policy=sni))
    assert upstream.pools[0] is not tls_pool_ and tls_pool_.retired
    (await upstream.pools[0].connect()).close()
    assert names == [SERVICE_NAME, "web.example.com"]
    upstream.close()
