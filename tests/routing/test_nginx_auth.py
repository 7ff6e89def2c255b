"""ingress-nginx's basic auth and proxy-ssl-secret at the builder level, and the htpasswd hashes.

Each test names the ingress-nginx e2e test (test/e2e/annotations/auth.go, proxyssl.go) or documentation
section (docs/user-guide/nginx-configuration/annotations.md, "Authentication", "Backend Certificate
Authentication") it reproduces. Requests go through the built table and the rule's filters
(`harness.send`); the slow-hash thread pool is exercised end to end in tests/server/test_basic_auth.py.
"""

from __future__ import annotations

import base64
from typing import Any

import bcrypt
import pytest

from proxy.objects import Snapshot
from proxy.references import ingress_secret_refs
from proxy.routing import htpasswd
from proxy.routing.auth import BasicAuth, challenge, parse_htpasswd
from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.policies import BackendTLS
from proxy.settings import Settings

from .objects import path, rule
from .test_nginx_annotations import HOST, annotated, go, same_as_incremental, warnings_of, world

# `openssl passwd` of "secret" (and its SHA-crypt test vectors from Drepper's specification).
OPENSSL = {
    "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/": "secret",
    "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1": "secret",
    "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5": "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1":
        "Hello world!",
    "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA": "Hello world!",
    "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=": "secret",
    "{PLAIN}secret": "secret",
}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def secret(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": namespace},
            "data": {key.replace("_", "."): base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def authed(name: str = "auth", **annotations: str) -> dict[str, Any]:
    return annotated(name, rule(HOST, path("/", "echo")), **{"auth_type": "basic", "auth_secret": "basic-auth",
                                                           "auth_realm": "test auth", **annotations})


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# ---------------------------------------------------------------------------------------------- hashes

@pytest.mark.parametrize("stored", sorted(OPENSSL))
def test_nginx_hash_schemes_match_openssl(stored: str) -> None:
    """ngx_http_auth_basic_module: "$apr1$", {PLAIN}, {SHA}, {SSHA} and crypt(3)'s $1$, $5$, $6$."""
    password = OPENSSL[stored].encode()
    assert htpasswd.verify(password, stored)
    assert not htpasswd.verify(password + b"x", stored)
    assert htpasswd.supported(stored)


def test_bcrypt_ssha_and_what_never_matches() -> None:
    for prefix in ("$2a$", "$2b$", "$2y$"):
        stored = prefix + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()[4:]
        assert htpasswd.verify(b"pw", stored) and not htpasswd.verify(b"px", stored)
        assert htpasswd.slow(stored)
    salt = b"saltsalt"
    import hashlib
    ssha = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + salt).digest() + salt).decode()
    assert htpasswd.verify(b"pw", ssha) and not htpasswd.slow(ssha)
    # A password without a scheme is not a hash (nginx hands it to crypt, which never gives it back).
    assert not htpasswd.verify(b"plaintext", "plaintext") and not htpasswd.supported("plaintext")
    assert not htpasswd.verify(b"", "") and not htpasswd.verify(b"x", "$apr1$")
    assert not htpasswd.verify(b"x", "{SSHA}!!!")  # malformed: never matches, never raises


def test_des_crypt_follows_pythons_crypt_module() -> None:
    """A 13-character DES hash (glibc's crypt("test", "ab")): checked only where Python's crypt module exists."""
    stored = "abgOeLfPimXQo"
    assert htpasswd.scheme(stored) == "des"
    assert htpasswd.verify(b"test", stored) == htpasswd.supported(stored)


def test_htpasswd_lines() -> None:
    users, problems = parse_htpasswd("# a comment\n\nfoo:{PLAIN}a\nfoo:{PLAIN}b\nnocolon\nbar:plain\n")
    assert users == {b"foo": "{PLAIN}a", b"bar": "plain"}  # the first line of a user wins
    assert len(problems) == 2 and "line 5" in problems[0] and "line 6" in problems[1]
    assert challenge('a "b"') == b'WWW-Authenticate: Basic realm="a \\"b\\""\r\n'


# ---------------------------------------------------------------------------------------------- basic auth

def test_basic_auth_answers_401_with_the_realm_and_lets_a_user_in() -> None:
    """auth.go "should return status code 401 when authentication is configured but Authorization header is not
    configured", "... with invalid credentials" and "should return status code 200 when ... sent"."""
    snap = world(authed(), secret("basic-auth", auth="foo:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"))
    denied = go(snap, "/")
    assert denied.status == 401 and denied.answer is not None
    assert denied.answer.fields == b'WWW-Authenticate: Basic realm="test auth"\r\n'
    assert go(snap, "/", headers=basic("foo", "wrong")).status == 401
    assert go(snap, "/", headers=basic("foo", "secret")).status == 200
    assert warnings_of(snap) == []
    same_as_incremental(snap)


def test_a_bcrypt_user_is_checked_off_the_loop() -> None:
    """A slow hash is not checked by the filter: its answer carries the check, run by the server's pool."""
    stored = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    snap = world(authed(), secret("basic-auth", auth=f"foo:{stored}"))
    route = build(snap, Settings()).table.match(HOST, "/", None)  # type: ignore[arg-type]
    assert route is not None and route.filters is not None
    (auth,) = [f for f in route.filters.request if isinstance(f, BasicAuth)]
    outcome = go(snap, "/", headers=basic("foo", "pw"))
    answer = outcome.answer
    assert answer is not None and answer.check is not None and answer.settle is not None
    assert answer.check() is True
    answer.settle(True)
    assert go(snap, "/", headers=basic("foo", "pw")).status == 200  # remembered
    assert "$2" not in repr(auth)  # hashes never in a repr (route dumps, the checksum's text)


def test_auth_map() -> None:
    """auth.go "should return status code 200 when authentication is configured with a map and Authorization
    header is sent"."""
    snap = world(authed(auth_secret_type="auth-map"), secret("basic-auth", foo="{PLAIN}bar"))
    assert go(snap, "/", headers=basic("foo", "bar")).status == 200
    assert go(snap, "/", headers=basic("bar", "foo")).status == 401


@pytest.mark.parametrize(("annotations", "objects", "warned"), [
    ({}, [], "Secret default/basic-auth not found"),  # auth.go "...configured with an invalid secret"
    ({}, [secret("basic-auth", other="x")], "has no key auth"),
    ({"auth_type": "digest", "auth_secret_type": "auth-map"}, [secret("basic-auth", foo="x")],
     "auth-map holds no digest users"),
    ({"auth_type": "kerberos"}, [secret("basic-auth", auth="x")], "is not basic or digest"),
    ({"auth_secret_type": "auth-json"}, [secret("basic-auth", auth="x")], "is not auth-file or auth-map"),
    ({"auth_secret": "other/basic-auth"}, [secret("basic-auth", "other", auth="x")], "another namespace"),
    ({"auth_secret": "a/b/c"}, [], "is not name or namespace/name"),
])
def test_auth_that_cannot_be_honoured_answers_503(annotations: dict[str, str], objects: list[Any],
                                                  warned: str) -> None:
    """Fail closed, as ingress-nginx's denied location (`return 503`): never served unprotected; the warning
    names the Ingress and the annotation."""
    snap = world(authed(**annotations), *objects)
    assert go(snap, "/", headers=basic("foo", "x")).status == 503
    assert any(message.startswith("auth: ") and warned in message for message in warnings_of(snap)), \
        warnings_of(snap)
    same_as_incremental(snap)


def test_auth_secret_without_auth_type_asks_nothing() -> None:
    """auth.go "should return status code 200 when no authentication is configured": auth-type is what turns it
    on (ingress-nginx reads nothing without it); a warning says auth-secret alone does nothing."""
    snap = world(annotated("auth", rule(HOST, path("/", "echo")), auth_secret="basic-auth"),
                 secret("basic-auth", auth="foo:{PLAIN}bar"))
    assert go(snap, "/").status == 200
    assert any("auth-secret has no effect without auth-type" in m for m in warnings_of(snap))


def test_a_secret_change_rebuilds_the_ingress_and_nothing_else_parses_again() -> None:
    """The incremental builder parses an Ingress again when a Secret its annotations read changes (or appears),
    and only then."""
    ingress = authed()
    others = [annotated(f"plain-{i}", rule(f"h{i}.example", path("/", "echo"))) for i in range(3)]
    base = world(ingress, *others)
    builder = Builder()
    first = builder.build(base, Settings())
    assert go(base, "/").status == 503  # no Secret yet
    with_secret = Snapshot(**{**_fields(base), "secrets": {("default", "basic-auth"): secret("basic-auth",
                                                                                              auth="foo:{PLAIN}a")}})
    second = builder.build(with_secret, Settings())
    assert builder.work.ingresses == 1 and second.checksum != first.checksum
    changed = Snapshot(**{**_fields(base), "secrets": {("default", "basic-auth"): secret("basic-auth",
                                                                                         auth="foo:{PLAIN}b")}})
    third = builder.build(changed, Settings())
    assert builder.work.ingresses == 1 and third.checksum != second.checksum
    assert third.checksum == build(changed, Settings()).checksum
    unrelated = Snapshot(**{**_fields(changed), "secrets": {**changed.secrets, ("default", "x"): secret("x", a="b")}})
    builder.build(unrelated, Settings())
    assert builder.work.ingresses == 0


def _fields(snap: Snapshot) -> dict[str, Any]:
    return {name: getattr(snap, name) for name in Snapshot.__slots__}  # type: ignore[attr-defined]


def test_the_secrets_an_ingress_names() -> None:
    """What the object cache holds the data of: spec.tls, auth-secret (bare or namespace/name in the Ingress's
    namespace), auth-tls-secret, proxy-ssl-secret; another namespace is not a reference."""
    obj = annotated("a", rule(HOST, path("/", "echo")), auth_secret="htpasswd", auth_tls_secret="default/ca",
                    proxy_ssl_secret="other/client")
    obj["spec"]["tls"] = [{"hosts": [HOST], "secretName": "cert"}]
    assert ingress_secret_refs(obj) == {("default", "htpasswd"), ("default", "ca"), ("default", "cert")}


# ---------------------------------------------------------------------------------------------- proxy-ssl-secret

def test_proxy_ssl_secret_gives_the_pods_tls_its_ca_and_client_certificate() -> None:
    """proxyssl.go "should set valid proxy-ssl-secret" (ca.crt, tls.crt, tls.key) with "proxy-ssl-verify on",
    "proxy-ssl-name" and "proxy-ssl-server-name"."""
    snap = world(annotated("s", rule(HOST, path("/", "echo")), backend_protocol="HTTPS",
                           proxy_ssl_secret="default/backend-tls", proxy_ssl_verify="on",
                           proxy_ssl_name="echo.internal", proxy_ssl_server_name="on"),
                 secret("backend-tls", ca_crt=PEM, tls_crt=PEM, tls_key="-----BEGIN PRIVATE KEY-----\nK\n"))
    config = build(snap, Settings())
    route = config.table.match(HOST, "/", None)  # type: ignore[arg-type]
    assert route is not None and route.filters is None
    policy = config.clusters[route.cluster].policy
    assert policy is not None and policy.tls == BackendTLS(
        sni="echo.internal", ca=PEM.encode() + b"\n", verify=True, subject_alt_names=("echo.internal",),
        client_certificate=PEM.encode() + b"\n", client_key=b"-----BEGIN PRIVATE KEY-----\nK\n")
    assert warnings_of(snap) == []
    same_as_incremental(snap)


@pytest.mark.parametrize(("objects", "warned"), [
    ([], "Secret default/backend-tls not found"),
    ([secret("backend-tls", other="x")], "holds neither ca.crt nor tls.crt and tls.key"),
    ([secret("backend-tls", ca_crt="not pem")], "ca.crt is not PEM"),
])
def test_an_unusable_proxy_ssl_secret_fails_closed(objects: list[Any], warned: str) -> None:
    """ingress-nginx denies a location whose proxy-ssl-secret cannot be used (503); never served unverified."""
    snap = world(annotated("s", rule(HOST, path("/", "echo")), backend_protocol="HTTPS",
                           proxy_ssl_secret="default/backend-tls", proxy_ssl_verify="on"), *objects)
    assert go(snap, "/").status == 503
    assert any("proxy-ssl-secret" in m and warned in m and "503" in m for m in warnings_of(snap)), warnings_of(snap)


def test_proxy_ssl_secret_without_https_is_a_warning() -> None:
    snap = world(annotated("s", rule(HOST, path("/", "echo")), proxy_ssl_secret="default/backend-tls"),
                 secret("backend-tls", ca_crt=PEM))
    assert go(snap, "/").status == 200
    assert any("no effect without backend-protocol HTTPS or GRPCS" in m for m in warnings_of(snap))
