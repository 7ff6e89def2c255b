"""Digest authentication (ingress-nginx's `auth-type: digest`, the nginx-http-auth-digest module it builds in),
compiled: RFC 2617 / 7616 with MD5 and qop "auth", users from an htdigest file (`user:realm:HA1`).

`DigestAuth` answers 401 with `WWW-Authenticate: Digest algorithm="MD5", qop="auth", realm=..., nonce=...`
unless the request's `Authorization: Digest` response matches a user of the realm. Checking costs two MD5s:
it runs on the event loop.

Nonces are stateless: the time they were made and a keyed BLAKE2b of it (the key derived from the users, so
every worker process accepts every other's nonces, and a changed Secret invalidates them). One older than
`NONCE_TIMEOUT` gets a new challenge with `stale="true"` (nginx's auth_digest_timeout, 60 s). Difference from
the module: no per-nonce request counter, so a captured Authorization field can be replayed for the same URI
until its nonce expires (the module's auth_digest_replays counts them).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field

from proxy.routing.filters import Answer
from proxy.routing.request import Request

NONCE_TIMEOUT = 60.0  # seconds (auth_digest_timeout)
_NONCE_MAC = 16  # bytes of the nonce's MAC


def parse_htdigest(text: str, realm: str) -> tuple[dict[bytes, bytes], list[str]]:
    """The users of `realm` in an htdigest file ("user:realm:HA1" lines, HA1 = MD5(user:realm:password) in hex),
    and problems, as messages. Lines of other realms are skipped (the module matches user and realm)."""
    users: dict[bytes, bytes] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or len(parts[2]) != 32 or any(c not in "0123456789abcdefABCDEF" for c in parts[2]):
            problems.append(f"line {number} is not user:realm:HA1 (32 hex digits); skipped")
            continue
        user, line_realm, ha1 = parts
        if line_realm == realm:
            users.setdefault(user.encode("utf-8"), ha1.lower().encode("ascii"))
    return users, problems


def _fields(value: bytes) -> dict[bytes, bytes]:
    """The name=value pairs of a Digest Authorization field (quoted values unquoted)."""
    found: dict[bytes, bytes] = {}
    index, size = 0, len(value)
    while index < size:
        while index < size and value[index] in b" \t,":
            index += 1
        equals = value.find(b"=", index)
        if equals < 0:
            break
        name = value[index:equals].strip().lower()
        index = equals + 1
        if index < size and value[index : index + 1] == b'"':
            end = index + 1
            text = bytearray()
            while end < size and value[end : end + 1] != b'"':
                if value[end : end + 1] == b"\\" and end + 1 < size:
                    end += 1
                text += value[end : end + 1]
                end += 1
            found[name] = bytes(text)
            index = end + 1
        else:
            end = value.find(b",", index)
            end = size if end < 0 else end
            found[name] = value[index:end].strip()
            index = end
    return found


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).hexdigest().encode("ascii")


@dataclass(frozen=True, slots=True)
class DigestAuth:
    """401 unless the request's Digest response matches a user of the realm. Equal (and in the build's
    checksum) by realm and a digest of the users: the HA1 values are never in a repr."""

    realm: str
    fingerprint: str
    users: dict[bytes, bytes] = field(compare=False, repr=False, hash=False)
    key: bytes = field(compare=False, repr=False, hash=False)
    order: int = field(default=9, init=False)

    @classmethod
    def of(cls, realm: str, users: dict[bytes, bytes]) -> DigestAuth:
        material = realm.encode("utf-8", "replace") + b"\0" + b"\n".join(
            user + b":" + users[user] for user in sorted(users))
        fingerprint = hashlib.sha256(material).hexdigest()[:32]
        key = hashlib.blake2b(b"pyngress digest nonce" + material, digest_size=32).digest()
        return cls(realm, fingerprint, dict(users), key)

    def nonce(self, now: float) -> bytes:
        stamp = b"%08x" % int(now)
        return stamp + self.nonce_mac(stamp)

    def _fresh(self, nonce: bytes, now: float) -> bool | None:
        """True: ours and fresh; False: ours but expired; None: not ours."""
        stamp = nonce[:8]
        if len(nonce) != 8 + 2 * _NONCE_MAC or not hmac.compare_digest(self.nonce_mac(stamp), nonce[8:]):
            return None
        try:
            made = int(stamp, 16)
        except ValueError:
            return None
        return 0 <= now - made <= NONCE_TIMEOUT

    def nonce_mac(self, stamp: bytes) -> bytes:
        return hashlib.blake2b(stamp, key=self.key, digest_size=_NONCE_MAC).hexdigest().encode("ascii")

    def challenge(self, now: float, *, stale: bool = False) -> Answer:
        quoted = self.realm.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
        value = (b'Digest algorithm="MD5", qop="auth", realm="' + quoted + b'", nonce="' + self.nonce(now) + b'"'
                 + (b', stale="true"' if stale else b""))
        return Answer(401, detail="authorization required", fields=b"WWW-Authenticate: " + value + b"\r\n")

    def on_request(self, request: Request) -> Answer | None:
        now = time.time()
        value = request.header(b"authorization")
        if value is None or value[:7].lower() != b"digest ":
            return self.challenge(now)
        given = _fields(value[7:])
        user = given.get(b"username")
        nonce = given.get(b"nonce", b"")
        fresh = self._fresh(nonce, now)
        ha1 = self.users.get(user) if user is not None else None
        if (ha1 is None or fresh is None or given.get(b"realm") != self.realm.encode("utf-8")
                or given.get(b"qop") != b"auth" or given.get(b"algorithm", b"MD5").upper() != b"MD5"):
            return self.challenge(now)
        uri = given.get(b"uri", b"")
        own = request.path.encode("latin-1") + (b"?" + request.query if request.query else b"")
        if uri != own:
            return self.challenge(now)
        ha2 = _md5(request.method + b":" + uri)
        expected = _md5(b":".join((ha1, nonce, given.get(b"nc", b""), given.get(b"cnonce", b""), b"auth", ha2)))
        if not hmac.compare_digest(expected, given.get(b"response", b"").lower()):
            return self.challenge(now)
        if not fresh:
            return self.challenge(now, stale=True)  # right password, old nonce: the client retries with a new one
        return None


__all__ = ["NONCE_TIMEOUT", "DigestAuth", "parse_htdigest"]
