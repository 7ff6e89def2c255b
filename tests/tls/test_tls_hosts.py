"""TLS host mapping from Ingresses and store building from a Snapshot (no sockets)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest

from proxy.objects import Snapshot, Warning
from proxy.tls.certs import Certificate, parse_secret
from proxy.tls.default import generate_default_certificate
from proxy.tls.hosts import NO_SECRET, build_store, default_certificate, tls_hosts
from proxy.tls.store import CertStore, CertStoreHolder, prepare_context

NOW = datetime.now(UTC)


def ingress(name: str, tls: object, *, namespace: str = "default", created: str = "2024-01-01T00:00:00Z",
            rules=None) -> dict:
    spec: dict = {"tls": tls}
    if rules is not None:
        spec["rules"] = rules
    return {"metadata": {"namespace": namespace, "name": name, "creationTimestamp": created}, "spec": spec}


def snapshot(*secrets: dict) -> Snapshot:
    return Snapshot(secrets={(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets})


@pytest.fixture(scope="module")
def default_cert() -> Certificate:
    return generate_default_certificate()


def test_tls_hosts_maps_hosts_to_secrets(pki):
    snap = snapshot(pki.leaf("a.test").secret("web", "a-tls"), pki.leaf("x").secret("web", "b-tls"))
    ing = ingress(
        "site",
        [{"hosts": ["A.Test", "*.Wild.test", "c.test."], "secretName": "a-tls"},
         {"hosts": ["b.test"], "secretName": "b-tls"}],
        namespace="web",
    )
    hosts, warnings = tls_hosts(snap, [ing])
    assert hosts == {
        "a.test": ("web", "a-tls"),
        "*.wild.test": ("web", "a-tls"),
        "c.test": ("web", "a-tls"),
        "b.test": ("web", "b-tls"),
    }
    assert warnings == []


def test_tls_hosts_reports_missing_secret_and_keeps_host(pki):
    hosts, warnings = tls_hosts(snapshot(), [ingress("site", [{"hosts": ["a.test"], "secretName": "gone"}])])
    assert hosts == {"a.test": ("default", "gone")}
    assert warnings == [Warning("Ingress", "default", "site",
                                "TLS Secret default/gone not found; its hosts use the default certificate")]


def test_tls_hosts_without_secret_name_use_default_certificate():
    hosts, warnings = tls_hosts(snapshot(), [ingress("site", [{"hosts": ["a.test"]}])])
    assert hosts == {"a.test": ("default", NO_SECRET)} and warnings == []


def test_tls_entry_without_hosts_covers_rule_hosts(pki):
    snap = snapshot(pki.leaf("a.test").secret("default", "s"))
    rules = [{"host": "a.test", "http": {}}, {"http": {}}, {"host": "b.test"}]
    for entry in ({"secretName": "s"}, {"secretName": "s", "hosts": []}):
        hosts, warnings = tls_hosts(snap, [ingress("site", [entry], rules=rules)])
        assert hosts == {"a.test": ("default", "s"), "b.test": ("default", "s")} and warnings == []
    hosts, warnings = tls_hosts(snap, [ingress("bare", [{"secretName": "s"}])])
    assert hosts == {} and "lists no hosts" in warnings[0].message


def test_oldest_ingress_wins_a_host_regardless_of_order(pki):
    snap = snapshot(pki.leaf("a.test").secret("one", "s"), pki.leaf("a.test").secret("two", "s"))
    old = ingress("old", [{"hosts": ["a.test"], "secretName": "s"}], namespace="two", created="2023-01-01T00:00:00Z")
    new = ingress("new", [{"hosts": ["a.test"], "secretName": "s"}], namespace="one", created="2024-01-01T00:00:00Z")
    for order in ([old, new], [new, old]):
        hosts, warnings = tls_hosts(snap, order)
        assert hosts == {"a.test": ("two", "s")}
        assert [(w.namespace, w.name) for w in warnings] == [("one", "new")]
        assert "already uses Secret two/s from Ingress two/old" in warnings[0].message
    # Same host and same Secret twice is not a conflict.
    again = ingress("again", [{"hosts": ["a.test"], "secretName": "s"}], namespace="two",
                    created="2025-01-01T00:00:00Z")
    assert tls_hosts(snap, [old, again])[1] == []


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("nope", "spec.tls is not a list"),
        (["nope"], "spec.tls[0] is not an object"),
        ([{"hosts": "a.test", "secretName": "s"}], "spec.tls[0].hosts is not a list"),
        ([{"hosts": ["a.test"], "secretName": 5}], "spec.tls[0].secretName is not a string"),
        ([{"hosts": ["a.*.test"], "secretName": "s"}], "invalid TLS host 'a.*.test'"),
        ([{"hosts": ["*"], "secretName": "s"}], "invalid TLS host '*'"),
        ([{"hosts": ["**.test"], "secretName": "s"}], "invalid TLS host '**.test'"),
        ([{"hosts": ["a test"], "secretName": "s"}], "invalid TLS host 'a test'"),
        ([{"hosts": ["a.test:443"], "secretName": "s"}], "invalid TLS host 'a.test:443'"),
        ([{"hosts": [None], "secretName": "s"}], "invalid TLS host None"),
        ([{"hosts": [""], "secretName": "s"}], "invalid TLS host ''"),
    ],
)
def test_bad_tls_entries_warn_and_spare_the_rest(pki, tls, message):
    snap = snapshot(pki.leaf("ok.test").secret("default", "s"))
    bad = ingress("bad", tls, created="2020-01-01T00:00:00Z")
    good = ingress("good", [{"hosts": ["ok.test"], "secretName": "s"}])
    hosts, warnings = tls_hosts(snap, [bad, good])
    assert hosts == {"ok.test": ("default", "s")}
    assert len(warnings) == 1 and warnings[0].name == "bad" and message in warnings[0].message


def test_malformed_ingress_objects_are_skipped(pki):
    snap = snapshot(pki.leaf("ok.test").secret("default", "s"))
    good = ingress("good", [{"hosts": ["ok.test"], "secretName": "s"}])
    junk = ["nope", {"metadata": "x", "spec": {"tls": [{"hosts": ["j.test"]}]}},
            {"metadata": {"name": "n"}, "spec": []}]
    hosts, warnings = tls_hosts(snap, [*junk, good])
    assert hosts == {"ok.test": ("default", "s"), "j.test": ("default", NO_SECRET)} and warnings == []


def test_build_store_serves_checked_certificates(pki, default_cert):
    a, wild = pki.leaf("a.test"), pki.leaf("*.wild.test")
    snap = snapshot(a.secret("web", "a"), wild.secret("web", "wild"))
    store, warnings = build_store(snap, {"a.test": ("web", "a"), "*.wild.test": ("web", "wild")}, default=default_cert)
    assert warnings == []
    assert store.certificate_for("a.test").serial == a.serial
    assert store.certificate_for("x.wild.test").serial == wild.serial
    assert store.certificate_for("a.b.wild.test") is default_cert
    assert store.certificate_for(None) is default_cert
    assert store.select("A.TEST") is store.select("a.test") is not store.default_context
    assert store.select("x.wild.test.") is store.select("y.wild.test") is not store.default_context
    assert store.select("wild.test") is store.default_context
    assert store.select(None) is store.select("") is store.select("other.test") is store.default_context
    assert {c.serial for c in store.distinct()} == {a.serial, wild.serial, default_cert.serial}


def test_build_store_falls_back_per_secret_with_warnings(pki, default_cert):
    good = pki.leaf("good.test")
    expired = pki.leaf("old.test", not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=1))
    mismatched = pki.leaf("bad.test")
    wildcard = pki.leaf("*.wild.test")
    snap = snapshot(
        good.secret("ns", "good"),
        expired.secret("ns", "old"),
        mismatched.secret("ns", "bad", key_pem=good.key_pem),
        wildcard.secret("ns", "wild"),
    )
    host_map = {
        "good.test": ("ns", "good"),
        "old.test": ("ns", "old"),
        "bad.wild.test": ("ns", "bad"),
        "*.wild.test": ("ns", "wild"),
        "gone.test": ("ns", "missing"),
        "plain.test": ("ns", NO_SECRET),
    }
    store, warnings = build_store(snap, host_map, default=default_cert)
    assert store.certificate_for("good.test").serial == good.serial
    # A broken Secret's host gets the default, not a wildcard that happens to cover it.
    for host in ("old.test", "bad.wild.test", "gone.test", "plain.test"):
        assert store.certificate_for(host) is default_cert, host
        assert store.select(host) is store.default_context, host
    assert store.certificate_for("other.wild.test").serial == wildcard.serial
    assert sorted((w.kind, w.namespace, w.name) for w in warnings) == [("Secret", "ns", "bad"), ("Secret", "ns", "old")]
    text = {w.name: w.message for w in warnings}
    assert text["bad"] == ("tls.key does not match the certificate's public key; "
                           "bad.wild.test use the default certificate")
    assert text["old"].startswith("certificate expired at ")
    assert text["old"].endswith("old.test use the default certificate")


def test_build_store_warns_for_hosts_outside_the_sans_but_serves(pki, default_cert):
    leaf = pki.leaf("a.test", "*.b.test")
    snap = snapshot(leaf.secret("ns", "s"))
    host_map = dict.fromkeys(("a.test", "x.b.test", "c.test", "y.x.b.test"), ("ns", "s"))
    store, warnings = build_store(snap, host_map, default=default_cert)
    assert warnings == [Warning("Secret", "ns", "s",
                                "certificate does not cover c.test, y.x.b.test (SAN DNS names: a.test, *.b.test)")]
    assert all(store.certificate_for(h).serial == leaf.serial for h in host_map)


def test_rebuild_reuses_contexts_of_unchanged_certificates(pki, default_cert):
    a, b, b2 = pki.leaf("a.test"), pki.leaf("b.test"), pki.leaf("b.test")
    host_map = {"a.test": ("ns", "a"), "b.test": ("ns", "b")}
    first, _ = build_store(snapshot(a.secret("ns", "a"), b.secret("ns", "b")), host_map, default=default_cert)
    second, _ = build_store(snapshot(a.secret("ns", "a"), b2.secret("ns", "b")), host_map, default=default_cert,
                            reuse=first)
    assert second.select("a.test") is first.select("a.test")
    assert second.default_context is first.default_context
    assert second.select("b.test") is not first.select("b.test")
    assert second.certificate_for("b.test").serial == b2.serial
    # Only what the new store uses is carried forward, so the cache cannot grow without bound.
    assert set(second.contexts) == {default_cert.digest, second.certificate_for("a.test").digest,
                                    second.certificate_for("b.test").digest}
    # One context per distinct certificate, however many hosts share it.
    shared, _ = build_store(snapshot(a.secret("ns", "a")), dict.fromkeys(("a.test", "www.a.test"), ("ns", "a")),
                            default=default_cert)
    assert shared.select("a.test") is shared.select("www.a.test") and len(shared.contexts) == 2


def test_contexts_share_one_policy(pki, default_cert):
    store = CertStore({"a.test": parse_secret(pki.leaf("a.test").secret())}, default=default_cert)
    for context in (CertStoreHolder(store).server_context(), store.select("a.test"), store.default_context):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        assert context.options & ssl.OP_NO_COMPRESSION and context.options & ssl.OP_NO_RENEGOTIATION
        assert not context.options & ssl.OP_NO_TICKET
        suites = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
        assert suites and all(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name) for name in suites)


def test_cert_store_refuses_bad_patterns(default_cert):
    for pattern in ("*.", "a.*.test", "*.*.test", "", "*"):
        with pytest.raises(ValueError):
            CertStore({pattern: default_cert}, default=default_cert)


def test_prepare_context_through_temporary_files(pki, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    cert = parse_secret(pki.leaf("a.test").secret())
    context = prepare_context(cert, in_memory=False)
    assert context.minimum_version.name == "TLSv1_2"
    assert list(tmp_path.iterdir()) == [tmp_path / "root.pem"]  # the PEM files are gone again


def test_default_certificate_from_a_secret(pki, default_cert):
    leaf = pki.leaf("fallback.test")
    snap = snapshot(leaf.secret("kube-system", "default-cert"),
                    pki.leaf("x").secret("kube-system", "broken", key_pem=leaf.key_pem))
    cert, warnings = default_certificate(snap, "kube-system/default-cert", generated=default_cert)
    assert cert.serial == leaf.serial and warnings == []
    assert default_certificate(snap, "", generated=default_cert) == (default_cert, [])
    for reference, message in [
        ("no-slash", "must be given as namespace/name"),
        ("kube-system/absent", "Secret not found"),
        ("kube-system/broken", "unusable: tls.key does not match"),
    ]:
        cert, warnings = default_certificate(snap, reference, generated=default_cert)
        assert cert is default_cert and len(warnings) == 1 and message in warnings[0].message
