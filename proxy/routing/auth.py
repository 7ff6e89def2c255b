"""Basic authentication (ingress-nginx's `auth-type: basic`): the users of an htpasswd Secret, compiled.

`BasicAuth` answers 401 with `WWW-Authenticate: Basic realm="<realm>"` (nginx's auth_basic) unless the
request's `Authorization: Basic` credentials match a user's hash (routing.htpasswd). The Authorization
field is forwarded to the pods, as nginx does. Users are compiled at build time: a dict from user name
(bytes, as the client sends it) to its hash.

Checking a slow hash (bcrypt, MD5-crypt, SHA-crypt) is not done on the event loop: the filter answers
with a check (`Answer.check`) that the server runs on a bounded thread pool, then settles. Successful
checks are remembered in a bounded process-wide set keyed by a keyed BLAKE2b digest of the filter's
users (their fingerprint) and the Authorization value as sent: no plaintext is kept, a key made at start
makes the digests useless outside this process, and a changed Secret no longer matches. A remembered
request costs one digest and one set lookup (nothing decoded). Failures are not remembered (each costs a
check; the pool's queue bounds what that can take).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field

from proxy.routing import htpasswd
from proxy.routing.filters import Answer
from proxy.routing.request import Request

# Successful checks remembered (digests of 32 bytes); the oldest go first beyond this.
VERIFIED_LIMIT = 4096
_KEY = os.urandom(32)
_verified: dict[bytes, None] = {}


_blake2b = hashlib.blake2b


def _digest(salt: bytes, authorization: bytes) -> bytes:
    """The remembered form of one filter's (`salt`: its fingerprint) accepted Authorization value."""
    return _blake2b(salt + authorization, key=_KEY, digest_size=32).digest()


def _remember(digest: bytes) -> None:
    """(On the event loop thread only: the set is not shared with the pool's threads.)"""
    if len(_verified) >= VERIFIED_LIMIT:
        del _verified[next(iter(_verified))]
    _verified[digest] = None


def parse_htpasswd(text: str) -> tuple[dict[bytes, str], list[str]]:
    """Users of an htpasswd file ("user:hash" lines; blank lines and "#" comments skipped, as nginx does),
    and problems, as messages (a line without ":", a hash no check here can match). The first line of a
    user wins (nginx reads the file top down and stops at the first match)."""
    users: dict[bytes, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user:
            problems.append(f"line {number} is not user:hash; skipped")
            continue
        _add(users, user, stored, problems, f"line {number}")
    return users, problems


def parse_auth_map(data: dict[str, str]) -> tuple[dict[bytes, str], list[str]]:
    """Users of an auth-map Secret (each key a user, its value the hash), and problems, as messages."""
    users: dict[bytes, str] = {}
    problems: list[str] = []
    for user in sorted(data):
        _add(users, user, data[user].strip(), problems, f"user {user!r:.40}")
    return users, problems


def _add(users: dict[bytes, str], user: str, stored: str, problems: list[str], where: str) -> None:
    name = user.encode("utf-8")
    if name in users:
        return
    if not htpasswd.supported(stored):
        kind = htpasswd.scheme(stored)
        problems.append(f"{where}: " + ("a DES crypt hash, which needs Python's crypt module (gone in 3.13); "
                                        if kind == "des" else "not a hash nginx reads (a plain password needs "
                                        "\"{PLAIN}\"); ") + "that user is never let in")
    users[name] = stored


def challenge(realm: str) -> bytes:
    """The WWW-Authenticate field nginx's `auth_basic "<realm>"` sends (quotes and backslashes escaped)."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return b'WWW-Authenticate: Basic realm="' + quoted.encode("utf-8") + b'"\r\n'


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """401 unless the request's Basic credentials match a user. Equal (and in the build's checksum) by realm
    and a digest of the users: the hashes themselves are never in a repr."""

    realm: str
    fingerprint: str  # sha256 of the users and hashes
    users: dict[bytes, str] = field(compare=False, repr=False, hash=False)
    denied: Answer = field(compare=False, repr=False, hash=False)
    salt: bytes = field(compare=False, repr=False, hash=False)  # the fingerprint's bytes, for _digest
    order: int = field(default=9, init=False)

    @classmethod
    def of(cls, realm: str, users: dict[bytes, str]) -> BasicAuth:
        fingerprint = hashlib.sha256(realm.encode("utf-8", "replace") + b"\0" + b"\n".join(
            user + b":" + users[user].encode("utf-8", "replace") for user in sorted(users))).hexdigest()[:32]
        return cls(realm, fingerprint, dict(users),
                   Answer(401, detail="authorization required", fields=challenge(realm)),
                   fingerprint.encode("ascii") + b"\0")

    def on_request(self, request: Request) -> Answer | None:
        value = request.header(b"authorization")
        if value is None:
            return self.denied
        digest = _digest(self.salt, value)
        if digest in _verified:
            return None
        if value[:6].lower() != b"basic ":
            return self.denied
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return self.denied
        user, sep, password = decoded.partition(b":")
        stored = self.users.get(user) if sep else None
        if stored is None:
            return self.denied
        if not htpasswd.slow(stored):
            if htpasswd.verify(password, stored):
                _remember(digest)
                return None
            return self.denied

        def check() -> bool:
            return htpasswd.verify(password, stored)

        def settle(ok: bool) -> None:
            if ok:
                _remember(digest)

        return Answer(401, detail="authorization required", fields=self.denied.fields, check=check, settle=settle)


__all__ = ["VERIFIED_LIMIT", "BasicAuth", "challenge", "parse_auth_map", "parse_htpasswd"]
