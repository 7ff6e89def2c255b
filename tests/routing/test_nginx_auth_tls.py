"""ingress-nginx's client certificate annotations (`auth-tls-*`) at the builder level: which hosts ask for a
certificate (the TLS store's input), and what each route's check answers for a connection's verdict.

Cases are ingress-nginx's internal/ingress/annotations/authtls/main.go (parsing, defaults, LocationDenied) and
test/e2e/annotations/authtls.go (status codes); the real handshakes are tests/e2e/test_auth_tls.py's.
"""

from __future__ import annotations

from proxy.routing.ingress.client_auth import client_auth_hosts
from proxy.tls.client_auth import ClientCertificate

from .objects import path, rule
from .test_nginx_annotations import HOST, annotated, go, same_as_incremental, warnings_of, world

GOOD = ClientCertificate(secret="default/ca", verify="SUCCESS", error=0, subject="CN=authtls,O=Example",
                         issuer="CN=Example CA", escaped_pem="-----BEGIN%20CERTIFICATE-----%0A")
NONE = ClientCertificate(secret="default/ca", verify="NONE", error=0)
UNKNOWN_CA = ClientCertificate(secret="default/ca", verify="FAILED:unable to get local issuer certificate",
                               error=20, subject="CN=stranger", issuer="CN=Other CA", escaped_pem="x")
EXPIRED = ClientCertificate(secret="default/ca", verify="FAILED:certificate has expired", error=10,
                            subject="CN=authtls", issuer="CN=Example CA", escaped_pem="x")


def site(name: str = "auth", **annotations: str):
    return world(annotated(name, rule(HOST, path("/", "echo")), **annotations))


def sent(outcome) -> dict[str, str]:
    """The upstream request's fields, by lower-case name."""
    return {k.lower(): v for k, v in outcome.request_headers.items()}


def https(snap, certificate, **options):
    return go(snap, "/", scheme="https", certificate=certificate, **options)


def test_verify_on_by_default():
    """authtls.go "should set sslClientCertificate, sslVerifyClient and sslVerifyDepth with auth-tls-secret" (400
    without certificate, 200 with one); main.go's default verify "on"."""
    snap = site(auth_tls_secret="default/ca")
    assert https(snap, NONE).status == 400
    assert https(snap, UNKNOWN_CA).status == 400
    assert https(snap, EXPIRED).status == 400
    ok = https(snap, GOOD, headers={"ssl-client-verify": "forged", "ssl-client-cert": "forged"})
    assert ok.status == 200
    fields = sent(ok)
    assert fields["ssl-client-verify"] == "SUCCESS"
    assert fields["ssl-client-subject-dn"] == "CN=authtls,O=Example"
    assert fields["ssl-client-issuer-dn"] == "CN=Example CA"
    assert "ssl-client-cert" not in fields
    same_as_incremental(snap)


def test_a_name_without_namespace_is_the_ingress_namespace():
    """main.go: ParseNameNS, an empty namespace is the Ingress's."""
    assert https(site(auth_tls_secret="ca"), GOOD).status == 200


def test_verify_modes():
    """authtls.go "should validate auth-tls-verify-client"; optional_no_ca lets CA errors through only."""
    off = site(auth_tls_secret="default/ca", auth_tls_verify_client="off")
    assert https(off, NONE).status == 200
    optional = site(auth_tls_secret="default/ca", auth_tls_verify_client="optional")
    assert https(optional, NONE).status == 200
    assert https(optional, UNKNOWN_CA).status == 400
    no_ca = site(auth_tls_secret="default/ca", auth_tls_verify_client="optional_no_ca")
    passed = https(no_ca, UNKNOWN_CA)
    assert passed.status == 200 and sent(passed)["ssl-client-verify"].startswith("FAILED:")
    assert https(no_ca, EXPIRED).status == 400  # not a CA problem


def test_an_invalid_verify_client_is_on_with_a_warning():
    """main.go: a value outside on|off|optional|optional_no_ca falls back to "on"."""
    snap = site(auth_tls_secret="default/ca", auth_tls_verify_client="sometimes")
    assert https(snap, NONE).status == 400
    assert any("auth-tls-verify-client" in w for w in warnings_of(snap))


def test_error_page_pass_certificate_and_match_cn():
    """authtls.go "should 302 redirect to error page instead of 400", "should pass URL-encoded certificate to
    upstream", "should return 403 using auth-tls-match-cn with no matching CN from client"."""
    page = site(auth_tls_secret="default/ca", auth_tls_error_page="http://example.com/error")
    refused = https(page, NONE)
    assert refused.status == 302 and refused.location == "http://example.com/error"
    passed = site(auth_tls_secret="default/ca", auth_tls_pass_certificate_to_upstream="true")
    assert sent(https(passed, GOOD))["ssl-client-cert"] == "-----BEGIN%20CERTIFICATE-----%0A"
    assert https(site(auth_tls_secret="default/ca", auth_tls_match_cn="CN=notgonnamatch"), GOOD).status == 403
    assert https(site(auth_tls_secret="default/ca", auth_tls_match_cn="CN=(itwillmatch|authtls)"), GOOD).status == 200


def test_fail_closed():
    """main.go's LocationDenied (and its validators): the Ingress's routes answer 503, never unprotected."""
    assert https(site(auth_tls_secret="default/ca"), None).status == 503  # the host context has no CA
    other = ClientCertificate(secret="default/other", verify="SUCCESS", error=0, subject="CN=x", issuer="CN=y",
                              escaped_pem="")
    assert https(site(auth_tls_secret="default/ca"), other).status == 503  # another Ingress's CA won the host
    assert https(site(auth_tls_secret="elsewhere/ca"), GOOD).status == 503  # cross-namespace
    assert https(site(auth_tls_secret="a/b/c"), GOOD).status == 503
    assert https(site(auth_tls_secret="default/ca", auth_tls_match_cn="authtls"), GOOD).status == 503  # no CN=
    assert https(site(auth_tls_secret="default/ca", auth_tls_match_cn="CN=(x"), GOOD).status == 503
    assert https(site(auth_tls_secret="default/ca", auth_tls_error_page="javascript:alert(1)"), GOOD).status == 503
    problems = warnings_of(site(auth_tls_secret="elsewhere/ca"))
    assert any("another namespace" in w for w in problems)


def test_plain_http_counts_as_no_certificate_and_others_run_nothing():
    """A plain-HTTP request has no certificate ($ssl_client_verify empty in nginx): refused with verify on."""
    snap = world(annotated("auth", rule(HOST, path("/", "echo")), auth_tls_secret="default/ca",
                           ssl_redirect="false"),
                 annotated("plain", rule("plain.test", path("/", "echo"))))
    assert go(snap, "/").status == 400
    plain = go(snap, "/", host="plain.test")
    assert plain.status == 200 and plain.route.filters is None


def test_hosts_asking_certificates_oldest_ingress_decides():
    """controller.go: "Server ... is already configured for mutual authentication" (the first Ingress wins)."""
    old = annotated("old", rule("a.test", path("/", "echo")), rule("b.test", path("/", "echo")),
                    created="2024-01-01T00:00:00Z", auth_tls_secret="default/ca", auth_tls_verify_depth="2")
    young = annotated("young", rule("a.test", path("/x", "echo")), created="2024-02-01T00:00:00Z",
                      auth_tls_secret="other", auth_tls_verify_client="optional")
    same = annotated("same", rule("b.test", path("/y", "echo")), created="2024-03-01T00:00:00Z",
                     auth_tls_secret="ca", auth_tls_verify_depth="2")
    broken = annotated("broken", rule("c.test", path("/", "echo")), auth_tls_secret="default/ca",
                       auth_tls_match_cn="CN=(")
    plain = annotated("plain", rule("d.test", path("/", "echo")))
    hosts, warnings = client_auth_hosts([young, plain, broken, same, old])
    assert hosts == {"a.test": (("default", "ca"), "on", 2), "b.test": (("default", "ca"), "on", 2)}
    assert [(w.name, "a.test" in w.message) for w in warnings] == [("young", True)]


def test_the_hosts_other_ingresses_are_guarded_too():
    """nginx.tmpl puts ssl_verify_client in the server block (controller.go: the first Ingress with auth-tls
    configures the server): a path of another Ingress of that host needs the certificate as well; other hosts
    do not."""
    snap = world(annotated("auth", rule(HOST, path("/", "echo")), auth_tls_secret="default/ca",
                           created="2024-01-01T00:00:00Z"),
                 annotated("later", rule(HOST, path("/other", "echo")), rule("plain.test", path("/", "echo")),
                           created="2024-02-01T00:00:00Z", enable_cors="true"))
    assert go(snap, "/other", scheme="https", certificate=NONE).status == 400
    ok = go(snap, "/other", scheme="https", certificate=GOOD)
    assert ok.status == 200 and sent(ok)["ssl-client-verify"] == "SUCCESS"
    assert go(snap, "/", host="plain.test", scheme="https").status == 200
    same_as_incremental(snap)
