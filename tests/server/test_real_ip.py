"""Trusting a proxy in front: ingress-nginx's use-forwarded-headers, enable-real-ip, proxy-real-ip-cidr,
forwarded-for-header and compute-full-forwarded-for (configmap.md), over real sockets to an echo pod.

Client sockets are bound to their own 127.0.x.y source addresses so the trusted networks see what they would
in a cluster. Each test names the ingress-nginx e2e test (test/e2e/settings/*.go) or documentation section
it reproduces.
"""

from __future__ import annotations

import pytest

from proxy.cli import settings_from_args
from proxy.http.forwarded import real_client
from proxy.routing.access import AddressSet
from server_harness import Rule, cluster, connect, read_response, request
from test_nginx_annotations import ingress, serve
from test_proxy_protocol import echoed

APP = "default/app:80"
HOST = "forwarded-headers"
SENT = [("X-Forwarded-Port", "1234"), ("X-Forwarded-Proto", "myproto"), ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Host", "myhost")]


async def started(make_proxy, make_pods, **settings: object):
    (pod,) = await make_pods("echo")
    proxy = await make_proxy(**settings)
    proxy.publish([Rule(HOST, "/", APP)], [cluster(APP, [pod.endpoint])])
    return proxy


def forwarded(response) -> dict[str, str]:
    headers = echoed(response)
    assert response.status == 200
    wanted = ("Host", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Host")
    for name in wanted:
        assert len(headers.get(name, [])) == 1, (name, headers.get(name))
    return {name: headers[name][0] for name in wanted}


def test_real_client_walks_from_the_right():
    """nginx realip with real_ip_recursive on: trusted addresses are skipped from the right."""
    trusted = AddressSet(("10.0.0.0/8", "127.0.0.0/8"))
    assert real_client(b"203.0.113.1, 198.51.100.2, 10.0.0.5", trusted) == b"198.51.100.2"
    assert real_client(b"10.1.1.1,10.2.2.2", trusted) == b"10.1.1.1"  # all trusted: the leftmost
    assert real_client(b"bogus, 10.0.0.5", trusted) == b"10.0.0.5"  # an invalid entry ends the walk
    assert real_client(b"2001:db8::1, 10.0.0.5", trusted) == b"2001:db8::1"
    assert real_client(b"nonsense", trusted) == b""


def test_flags():
    settings = settings_from_args(["--use-forwarded-headers", "--proxy-real-ip-cidr", "10.0.0.0/8, 192.168.0.1",
                                   "--proxy-real-ip-cidr", "fd00::/8", "--forwarded-for-header", "CF-Connecting-IP",
                                   "--compute-full-forwarded-for", "--proxy-protocol", "--enable-real-ip"])
    assert settings.use_forwarded_headers and settings.compute_full_forwarded_for and settings.proxy_protocol
    assert settings.enable_real_ip and settings.forwarded_for_header == "CF-Connecting-IP"
    assert settings.proxy_real_ip_cidr == ("10.0.0.0/8", "192.168.0.1/32", "fd00::/8")
    defaults = settings_from_args([])
    assert not (defaults.use_forwarded_headers or defaults.enable_real_ip or defaults.proxy_protocol)
    assert defaults.proxy_real_ip_cidr == ("0.0.0.0/0",)
    with pytest.raises(SystemExit):
        settings_from_args(["--proxy-real-ip-cidr", "10.0.0.0/33"])


async def test_use_forwarded_headers_trusts_them(make_proxy, make_pods):
    """forwarded_headers.go "should trust X-Forwarded headers when setting is true", including "ensuring that
    first entry in X-Forwarded-Host is used as the best host" (the upstream's Host too)."""
    proxy = await started(make_proxy, make_pods, use_forwarded_headers=True)
    seen = forwarded(await request(proxy.port, host=HOST, headers=SENT))
    assert seen == {"Host": "myhost", "X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.4",
                    "X-Forwarded-Proto": "myproto", "X-Forwarded-Port": "1234", "X-Forwarded-Host": "myhost"}
    several = [*SENT[:3], ("X-Forwarded-Host", "myhost.com, another.host,example.net")]
    seen = forwarded(await request(proxy.port, host=HOST, headers=several))
    assert seen["Host"] == seen["X-Forwarded-Host"] == "myhost.com"
    # Without any of them: the proxy's own values, as without the setting.
    seen = forwarded(await request(proxy.port, host=HOST))
    assert seen == {"Host": HOST, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
                    "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(proxy.port), "X-Forwarded-Host": HOST}


async def test_without_the_setting_they_are_replaced(make_proxy, make_pods):
    """forwarded_headers.go "should not trust X-Forwarded headers when setting is false" (X-Forwarded-For keeps
    today's appending: the client's list, then the connection's address)."""
    proxy = await started(make_proxy, make_pods)
    seen = forwarded(await request(proxy.port, host=HOST, headers=SENT))
    assert seen == {"Host": HOST, "X-Forwarded-For": "1.2.3.4, 127.0.0.1", "X-Real-IP": "127.0.0.1",
                    "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(proxy.port), "X-Forwarded-Host": HOST}


async def test_only_the_listed_networks_are_trusted(make_proxy, make_pods):
    """configmap.md "proxy-real-ip-cidr": a client outside the networks gets the proxy's own values (its own
    address as X-Forwarded-For, nginx's $remote_addr); one inside is trusted."""
    proxy = await started(make_proxy, make_pods, use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.5.0/24",))
    outside = forwarded(await request(proxy.port, host=HOST, headers=SENT, source="127.0.6.1"))
    assert outside == {"Host": HOST, "X-Forwarded-For": "127.0.6.1", "X-Real-IP": "127.0.6.1",
                       "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(proxy.port), "X-Forwarded-Host": HOST}
    inside = forwarded(await request(proxy.port, host=HOST, headers=SENT, source="127.0.5.1"))
    assert inside["X-Real-IP"] == inside["X-Forwarded-For"] == "1.2.3.4" and inside["X-Forwarded-Proto"] == "myproto"


async def test_recursive_real_ip_and_compute_full_forwarded_for(make_proxy, make_pods):
    """configmap.md "compute-full-forwarded-for": append the remote address to X-Forwarded-For instead of
    replacing it; the client address is still the first untrusted one from the right (real_ip_recursive)."""
    proxy = await started(make_proxy, make_pods, use_forwarded_headers=True, compute_full_forwarded_for=True,
                          proxy_real_ip_cidr=("127.0.0.0/8", "10.0.0.0/8"))
    chain = [("X-Forwarded-For", "203.0.113.1, 198.51.100.2"), ("X-Forwarded-For", "10.0.0.5")]
    seen = forwarded(await request(proxy.port, host=HOST, headers=chain, source="127.0.5.9"))
    assert seen["X-Real-IP"] == "198.51.100.2"
    assert seen["X-Forwarded-For"] == "203.0.113.1, 198.51.100.2, 10.0.0.5, 127.0.5.9"


async def test_enable_real_ip_takes_only_the_address(make_proxy, make_pods):
    """enable_real_ip.go "trusts X-Forwarded-For header only when setting is true": the address, not the
    other X-Forwarded-* fields; forwarded-for-header names another header (configmap.md)."""
    proxy = await started(make_proxy, make_pods, enable_real_ip=True)
    seen = forwarded(await request(proxy.port, host=HOST, headers=SENT))
    assert seen == {"Host": HOST, "X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.4",
                    "X-Forwarded-Proto": "http", "X-Forwarded-Port": str(proxy.port), "X-Forwarded-Host": HOST}
    proxy = await started(make_proxy, make_pods, enable_real_ip=True, forwarded_for_header="CF-Connecting-IP")
    seen = forwarded(await request(proxy.port, host=HOST, headers=[*SENT, ("CF-Connecting-IP", "5.6.7.8")]))
    assert seen["X-Real-IP"] == seen["X-Forwarded-For"] == "5.6.7.8"
    # A header the proxy itself sets can name the client too (the one a balancer in front set).
    proxy = await started(make_proxy, make_pods, enable_real_ip=True, forwarded_for_header="X-Real-IP")
    seen = forwarded(await request(proxy.port, host=HOST, headers=[*SENT, ("X-Real-IP", "9.9.9.9")]))
    assert seen["X-Real-IP"] == seen["X-Forwarded-For"] == "9.9.9.9"


async def test_source_range_and_rate_limit_see_the_real_client(make_proxy, make_pods):
    """ipwhitelist.go with the address the trusted X-Forwarded-For names (the reason nginx users turn
    use-forwarded-headers on behind an L7 balancer); limit-rps counts per that address too."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(use_forwarded_headers=True)
    serve(proxy, [echo], ingress("acl", "acl.foo.com", ("/", "Prefix", "echo"), whitelist_source_range="1.2.3.0/24",
                                 limit_rpm="1", limit_burst_multiplier="1"))
    assert (await request(proxy.port, host="acl.foo.com", headers=[("X-Forwarded-For", "1.2.3.4")])).status == 200
    assert (await request(proxy.port, host="acl.foo.com", headers=[("X-Forwarded-For", "5.6.7.8")])).status == 403
    assert (await request(proxy.port, host="acl.foo.com")).status == 403  # 127.0.0.1 itself
    # 1.2.3.4 soon uses up its burst (1 a minute, burst 1 x 1 + 1); 1.2.3.5, over the same connection address,
    # has a bucket of its own.
    statuses = [(await request(proxy.port, host="acl.foo.com", headers=[("X-Forwarded-For", "1.2.3.4")])).status
                for _ in range(4)]
    assert statuses[-1] == 503 and set(statuses) <= {200, 503}
    assert (await request(proxy.port, host="acl.foo.com", headers=[("X-Forwarded-For", "1.2.3.5")])).status == 200


@pytest.mark.parametrize(("networks", "client"), [(("10.0.0.0/8", "192.168.0.1/32"), "192.168.0.111"),
                                                   (("10.0.0.0/8",), "192.168.0.1")], ids=["trusted", "untrusted"])
async def test_proxy_protocol_with_forwarded_headers(make_proxy, make_pods, networks, client):
    """proxy_protocol.go "when use-forwarded-headers setting is true": the PROXY header's address is what is
    checked against proxy-real-ip-cidr; trusted, X-Forwarded-For names the client, else the PROXY address."""
    proxy = await started(make_proxy, make_pods, proxy_protocol=True, use_forwarded_headers=True,
                          proxy_real_ip_cidr=networks)
    reader, writer = await connect(proxy.port)
    try:
        writer.write(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1234\r\n")
        writer.write(b"GET / HTTP/1.1\r\nHost: forwarded-headers\r\nX-Forwarded-For: 192.168.0.111\r\n\r\n")
        seen = forwarded(await read_response(reader))
    finally:
        writer.close()
    assert seen["X-Forwarded-For"] == seen["X-Real-IP"] == client
    assert (seen["Host"], seen["X-Forwarded-Port"], seen["X-Forwarded-Proto"]) == (HOST, "1234", "http")


async def test_ssl_redirect_reads_the_scheme_the_client_used(make_proxy, make_pods):
    """Behind a balancer that terminates TLS, force-ssl-redirect must not loop: ingress-nginx's Lua redirects
    only when $pass_access_scheme is http, which a trusted X-Forwarded-Proto (use-forwarded-headers) or a
    PROXY header's port 443 sets (lua_ingress.lua, forcesslredirect.go)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.5.0/24",))
    serve(proxy, [echo], ingress("tls", "tls.foo.com", ("/", "Prefix", "echo"), force_ssl_redirect="true"))

    async def status(proto: str, source: str) -> int:
        headers = [("X-Forwarded-Proto", proto)] if proto else []
        return (await request(proxy.port, host="tls.foo.com", headers=headers, source=source)).status

    assert await status("https", "127.0.5.1") == 200
    assert await status("http", "127.0.5.1") == 308
    assert await status("", "127.0.5.1") == 308
    assert await status("https", "127.0.6.1") == 308  # not a trusted proxy
    proxied = await make_proxy(proxy_protocol=True)
    serve(proxied, [echo], ingress("tls", "tls.foo.com", ("/", "Prefix", "echo"), force_ssl_redirect="true"))
    for port, expected in ((443, 200), (80, 308)):
        reader, writer = await connect(proxied.port)
        try:
            writer.write(b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 %d\r\n" % port)
            writer.write(b"GET / HTTP/1.1\r\nHost: tls.foo.com\r\n\r\n")
            assert (await read_response(reader)).status == expected, port
        finally:
            writer.close()
