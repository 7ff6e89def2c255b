"""ingress-nginx's `auth-type: digest` (annotations.md "Authentication": auth-type "basic" or "digest"; the
nginx-http-auth-digest module its image builds in: RFC 2617 MD5 with qop "auth", an htdigest file). Requests go
through the built table and the rule's filters (`harness.send`)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from proxy.routing import digest_auth
from proxy.routing.digest_auth import DigestAuth, parse_htdigest

from .test_nginx_annotations import go, same_as_incremental, warnings_of, world
from .test_nginx_auth import authed, secret

REALM = "test auth"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def htdigest(user: str, password: str, realm: str = REALM) -> str:
    return f"{user}:{realm}:{md5(f'{user}:{realm}:{password}')}"


def challenge_of(outcome: Any) -> dict[str, str]:
    line = outcome.answer.fields.decode()
    assert line.startswith("WWW-Authenticate: Digest ") and line.endswith("\r\n")
    value = line.split(": ", 1)[1]
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def authorization(user: str, password: str, nonce: str, *, uri: str = "/", method: str = "GET",
                  realm: str = REALM, nc: str = "00000001", cnonce: str = "0a4f113b") -> dict[str, str]:
    ha1 = md5(f"{user}:{realm}:{password}")
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{md5(f'{method}:{uri}')}")
    return {"Authorization": f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                             f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}", algorithm=MD5'}


def test_digest_challenge_then_the_right_response_is_served():
    snap = world(authed(auth_type="digest"), secret("basic-auth", auth=htdigest("foo", "bar") + "\n"
                                                    + htdigest("foo", "other", realm="elsewhere")))
    first = go(snap, "/")
    assert first.status == 401
    fields = challenge_of(first)
    assert (fields["realm"], fields["qop"], fields["algorithm"]) == (REALM, "auth", "MD5")
    nonce = fields["nonce"]
    assert go(snap, "/", headers=authorization("foo", "bar", nonce)).status == 200
    assert go(snap, "/x?a=b", headers=authorization("foo", "bar", nonce, uri="/x?a=b")).status == 200
    assert go(snap, "/", headers=authorization("foo", "wrong", nonce)).status == 401
    assert go(snap, "/", headers=authorization("foo", "other", nonce, realm="elsewhere")).status == 401
    assert go(snap, "/y", headers=authorization("foo", "bar", nonce, uri="/x")).status == 401  # another URI
    assert go(snap, "/", headers=authorization("foo", "bar", "0" * 40)).status == 401  # not our nonce
    assert go(snap, "/", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status == 401
    assert not [m for m in warnings_of(snap) if m.startswith("auth:")]
    same_as_incremental(snap)


def test_an_expired_nonce_is_stale(monkeypatch):
    """The module's auth_digest_timeout (60 s): the right password with an old nonce gets a new challenge with
    stale="true" (the client retries without asking the user again)."""
    auth = DigestAuth.of(REALM, parse_htdigest(htdigest("foo", "bar"), REALM)[0])
    old = auth.nonce(1_000_000.0).decode()
    monkeypatch.setattr(digest_auth.time, "time", lambda: 1_000_000.0 + digest_auth.NONCE_TIMEOUT + 1)
    snap = world(authed(auth_type="digest"), secret("basic-auth", auth=htdigest("foo", "bar")))
    outcome = go(snap, "/", headers=authorization("foo", "bar", old))
    assert outcome.status == 401 and challenge_of(outcome)["stale"] == "true"


def test_htdigest_lines_that_are_not_users_are_warned_about():
    users, problems = parse_htdigest("# comment\nfoo:realm\n" + htdigest("foo", "bar"), REALM)
    assert list(users) == [b"foo"] and len(problems) == 1 and "line 2" in problems[0]
    snap = world(authed(auth_type="digest"), secret("basic-auth", auth="bar:other:" + "0" * 32))
    assert go(snap, "/").status == 401
    assert any("holds no user of realm 'test auth'" in m for m in warnings_of(snap))
