"""ingress-nginx's basic auth end to end: Ingress + Secret → the real builder → the real proxy → pods.

Each test names the case of ingress-nginx's test/e2e/annotations/auth.go it reproduces. bcrypt hashes are
made with a low cost (4) so the suite stays fast; the check still runs on the proxy's thread pool.
"""

from __future__ import annotations

import base64
import socket
import struct
from typing import Any

import bcrypt

from proxy.http import checks
from server_harness import connect, read_response, request, wait_until
from test_nginx_annotations import ingress, serve

HOST = "auth"
REALM = "test auth"


def secret(name: str, **data: str) -> dict[tuple[str, str], Any]:
    return {("default", name): {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                "metadata": {"name": name, "namespace": "default"},
                                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}}


def basic(user: str, password: str) -> list[tuple[str, str]]:
    return [("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())]


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def protected(name: str = "auth", secret_name: str = "basic-auth", **more: str) -> dict[str, Any]:
    return ingress(name, HOST, ("/", "Prefix", "echo"), auth_type="basic", auth_secret=secret_name,
                   auth_realm=REALM, **more)


async def test_401_with_a_challenge_without_or_with_wrong_credentials(make_proxy, make_pods):
    """auth.go "should return status code 401 when authentication is configured but Authorization header is
    not configured" and "... Authorization header is sent with invalid credentials"."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], protected(), secrets=secret("basic-auth", auth=f"foo:{bcrypt_hash('bar')}\n"))
    for headers in ([], basic("foo", "wrong"), basic("nobody", "bar"), [("Authorization", "Bearer x")],
                    [("Authorization", "Basic !!!")]):
        response = await request(proxy.port, "/", host=HOST, headers=headers)
        assert response.status == 401, headers
        assert response.header("WWW-Authenticate") == f'Basic realm="{REALM}"'
    assert echo.requests == 0


async def test_200_with_a_bcrypt_user_checked_once_off_the_loop(make_proxy, make_pods):
    """auth.go "should return status code 200 when authentication is configured and Authorization header is
    sent"; nginx forwards the Authorization field to the pod. The second request finds the check remembered."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], protected(), secrets=secret("basic-auth", auth=f"# users\nfoo:{bcrypt_hash('bar')}\n"))
    before = checks.POOL.checked_total
    first = await request(proxy.port, "/", host=HOST, headers=basic("foo", "bar"))
    assert first.status == 200
    assert ["Authorization", basic("foo", "bar")[0][1]] in first.json()["headers"]
    assert checks.POOL.checked_total == before + 1
    again = await request(proxy.port, "/x", host=HOST, headers=basic("foo", "bar"))
    assert again.status == 200
    assert checks.POOL.checked_total == before + 1  # remembered: no second bcrypt
    # A wrong password of the same user is checked (and refused) every time.
    assert (await request(proxy.port, "/", host=HOST, headers=basic("foo", "baz"))).status == 401
    assert checks.POOL.checked_total == before + 2


async def test_auth_map_and_nginx_hash_schemes(make_proxy, make_pods):
    """auth.go "should return status code 200 when authentication is configured with a map and Authorization
    header is sent"; the hashes nginx's auth_basic_user_file reads (made with `openssl passwd`)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    users = {"apr": "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", "md5": "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1",
             "sha": "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "plain": "{PLAIN}secret", "bc": bcrypt_hash("secret"),
             "s512": "$6$saltstring$AIsRs/Ee56G/tC8MEHhvReZTfx8u3rXXMl6eYrjCG9ibix19DxoMBLogdTET5Ukw9Sf7eZTITsuk0Ry5"
                     "qulYz."}
    serve(proxy, [echo], protected(auth_secret_type="auth-map"), secrets=secret("basic-auth", **users))
    for user in users:
        assert (await request(proxy.port, "/", host=HOST, headers=basic(user, "secret"))).status == 200, user
        assert (await request(proxy.port, "/", host=HOST, headers=basic(user, "Secret"))).status == 401, user


async def test_invalid_content_is_401_and_a_missing_secret_503_without_stopping_others(make_proxy, make_pods):
    """auth.go "should return status code 401 when authentication is configured with invalid content and
    Authorization header is sent" (a user without a hash), "should return status code 503 when authentication
    is configured with an invalid secret" and "keeps processing new ingresses even if one of the existing
    ingresses is misconfigured"."""
    echo, other = await make_pods("echo", "other")
    proxy = await make_proxy()
    config = serve(proxy, [echo, other], protected(),
                   ingress("missing", "missing.auth", ("/", "Prefix", "echo"), auth_type="basic",
                           auth_secret="something", auth_realm=REALM),
                   ingress("fine", "fine.auth", ("/", "Prefix", "other")),
                   secrets=secret("basic-auth", auth="foo:\nbar:plaintext\n"))
    for user, password in (("foo", ""), ("bar", "plaintext")):
        assert (await request(proxy.port, "/", host=HOST, headers=basic(user, password))).status == 401
    missing = await request(proxy.port, "/", host="missing.auth", headers=basic("foo", ""))
    assert missing.status == 503
    assert (await request(proxy.port, "/", host="fine.auth")).status == 200
    assert echo.requests == 0
    warned = {(w.name, "auth-secret" in w.message) for w in config.warnings}
    assert ("missing", True) in warned and ("auth", True) in warned  # the hashes nginx cannot read are named


async def test_401_carries_cors_headers(make_proxy, make_pods):
    """auth.go "should return status code 401 and cors headers when authentication and cors is configured but
    Authorization header is not configured"."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], protected(enable_cors="true"), secrets=secret("basic-auth", auth="foo:{PLAIN}bar"))
    response = await request(proxy.port, "/", host=HOST)
    assert response.status == 401
    assert response.header("Access-Control-Allow-Origin") == "*"


async def test_a_body_waits_for_the_check_and_reaches_the_pod_whole(make_proxy, make_pods):
    """The request's body is held while the bcrypt check runs, then forwarded whole."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], protected(), secrets=secret("basic-auth", auth=f"up:{bcrypt_hash('load')}"))
    payload = b"x" * 300_000
    response = await request(proxy.port, "/upload", host=HOST, method="POST", body=payload,
                             headers=basic("up", "load"))
    assert response.status == 200
    assert response.json()["size"] == len(payload)


async def test_a_client_that_leaves_during_the_check_is_forgotten(make_proxy, make_pods):
    """A client that resets its connection while its password is checked: the check's result is dropped and
    the pod sees nothing (a bcrypt cost of 12, ~0.25 s, so the reset arrives while it runs)."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    stored = bcrypt.hashpw(b"pw", bcrypt.gensalt(12)).decode()
    serve(proxy, [echo], protected(), secrets=secret("basic-auth", auth=f"slow:{stored}"))
    checked = checks.POOL.checked_total
    _, writer = await connect(proxy.port)
    auth = basic("slow", "pw")[0][1]
    writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {auth}\r\n\r\n".encode())
    await wait_until(lambda: checks.POOL.pending == 1)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST
    await wait_until(lambda: checks.POOL.pending == 0 and checks.POOL.checked_total == checked + 1)
    assert echo.requests == 0
    # The proxy goes on serving.
    assert (await request(proxy.port, "/", host=HOST, headers=basic("slow", "pw"))).status == 200
    assert echo.requests == 1


async def test_pipelined_requests_after_a_check_are_answered_in_order(make_proxy, make_pods):
    """Keep-alive: a request waiting for its check does not let the next one on the connection overtake it."""
    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    serve(proxy, [echo], protected(), secrets=secret("basic-auth", auth=f"pipe:{bcrypt_hash('line')}"))
    reader, writer = await connect(proxy.port)
    try:
        auth = basic("pipe", "line")[0][1]
        writer.write((f"GET /first HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {auth}\r\n\r\n"
                      f"GET /second HTTP/1.1\r\nHost: {HOST}\r\n\r\n").encode())
        first = await read_response(reader)
        second = await read_response(reader)
    finally:
        writer.close()
    assert (first.status, first.json()["path"]) == (200, "/first")
    assert second.status == 401


async def test_digest_auth_end_to_end(make_proxy, make_pods):
    """annotations.md "Authentication" with auth-type "digest" (ingress-nginx's auth_digest module): a 401 with a
    Digest challenge, then the client's RFC 2617 response over a real connection reaches the pod, with its
    Authorization field; a wrong password gets 401 again."""
    import hashlib
    import re

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    (echo,) = await make_pods("echo")
    proxy = await make_proxy()
    realm = "test auth"
    serve(proxy, [echo], ingress("auth", HOST, ("/", "Prefix", "echo"), auth_type="digest", auth_secret="basic-auth",
                                 auth_realm=realm),
          secrets=secret("basic-auth", auth=f"foo:{realm}:{md5(f'foo:{realm}:bar')}\n"))
    first = await request(proxy.port, "/p?q=1", host=HOST)
    assert first.status == 401
    nonce = dict(re.findall(r'(\w+)="([^"]*)"', first.header("WWW-Authenticate") or ""))["nonce"]

    def answer(password: str) -> list[tuple[str, str]]:
        ha1 = md5(f"foo:{realm}:{password}")
        response = md5(f"{ha1}:{nonce}:00000001:abc:auth:{md5('GET:/p?q=1')}")
        return [("Authorization", f'Digest username="foo", realm="{realm}", nonce="{nonce}", uri="/p?q=1", '
                                  f'qop=auth, nc=00000001, cnonce="abc", response="{response}"')]

    allowed = await request(proxy.port, "/p?q=1", host=HOST, headers=answer("bar"))
    assert allowed.status == 200 and allowed.json()["pod"] == "echo"
    assert (await request(proxy.port, "/p?q=1", host=HOST, headers=answer("nope"))).status == 401
