"""Password hashes of htpasswd files, as nginx's `auth_basic_user_file` checks them.

nginx (ngx_crypt) reads the hash's prefix: `$apr1$` (Apache's MD5), `{PLAIN}`, `{SHA}`, `{SSHA}`; anything
else goes to the system's crypt(3): `$1$` (MD5-crypt), `$5$`/`$6$` (SHA-crypt), `$2a$`/`$2b$`/`$2y$`
(bcrypt, in ingress-nginx's Alpine image and glibc's libxcrypt), and a 13-character DES hash. A plain
password without a prefix is therefore never accepted (crypt of it never equals it).

Here: bcrypt through the `bcrypt` package; MD5-crypt, Apache's MD5 and SHA-crypt implemented below (so
the result does not depend on the platform's crypt, and Python's `crypt` module is gone in 3.13); DES
only through the `crypt` module while Python still has it, else the entry never matches (`supported`
says so, for a warning at build time).

`slow(stored)` tells which checks cost enough (bcrypt; MD5-crypt's 1000 and SHA-crypt's 5000+ rounds in
pure Python) to run off the event loop; the others are one digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import warnings
from collections.abc import Callable
from typing import Any

import bcrypt

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# SHA-crypt's rounds (the spec's default, minimum and maximum).
_ROUNDS_DEFAULT = 5000
_ROUNDS_MIN = 1000
_ROUNDS_MAX = 999_999_999
_BCRYPT = ("$2a$", "$2b$", "$2y$")


def _crypt_module() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # Python < 3.13 only
    except ImportError:
        return None
    return crypt


_crypt = _crypt_module()


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> bytes:
    w = (b2 << 16) | (b1 << 8) | b0
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return bytes(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$1$") -> str:
    """MD5-crypt (`$1$`, Poul-Henning Kamp's) or, with magic `$apr1$`, Apache's variant of it."""
    salt = salt[:8]
    final = hashlib.md5(password + salt + password).digest()
    ctx = hashlib.md5(password + magic + salt)
    length = len(password)
    while length > 0:
        ctx.update(final[:min(16, length)])
        length -= 16
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = hashlib.md5(password if i & 1 else final)
        if i % 3:
            step.update(salt)
        if i % 7:
            step.update(password)
        step.update(final if i & 1 else password)
        final = step.digest()
    f = final
    text = b"".join(_b64_from_24bit(f[a], f[b], f[c], 4) for a, b, c in
                    ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)))
    text += _b64_from_24bit(0, 0, f[11], 2)
    return (magic + salt + b"$" + text).decode("ascii")


_Groups = tuple[tuple[int, int, int], ...]


def _sha_groups(size: int) -> tuple[_Groups, tuple[int, int, int], int]:
    """The byte order of SHA-crypt's encoding for a digest of `size` bytes (32 or 64), as the spec lists it."""
    groups: _Groups
    if size == 32:
        groups = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
                  (27, 7, 17), (18, 28, 8), (9, 19, 29))
        return groups, (-1, 31, 30), 3
    groups = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
              (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
              (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))
    return groups, (-1, -1, 63), 2


def sha_crypt(password: bytes, setting: str) -> str:
    """SHA-crypt (`$5$` SHA-256, `$6$` SHA-512; Ulrich Drepper's specification) of `password` with the
    salt and rounds of `setting` (a whole hash or just its "$5$[rounds=N$]salt" part)."""
    magic = setting[:3]
    algorithm = "sha256" if magic == "$5$" else "sha512"
    rest = setting[3:]
    rounds, custom = _ROUNDS_DEFAULT, False
    if rest.startswith("rounds="):
        number, _, rest = rest[7:].partition("$")
        rounds, custom = max(_ROUNDS_MIN, min(_ROUNDS_MAX, int(number))), True
    salt = rest.split("$", 1)[0][:16].encode("ascii")

    def digest(*parts: bytes) -> bytes:
        h = hashlib.new(algorithm)
        for part in parts:
            h.update(part)
        return h.digest()

    size = 32 if algorithm == "sha256" else 64
    n = len(password)
    b = digest(password, salt, password)
    a = hashlib.new(algorithm, password + salt)
    a.update(b * (n // size) + b[:n % size])
    i = n
    while i:
        a.update(b if i & 1 else password)
        i >>= 1
    a_sum = a.digest()
    dp = digest(password * n)
    p = (dp * (n // size + 1))[:n]
    ds = digest(salt * (16 + a_sum[0]))
    s = (ds * (len(salt) // size + 1))[:len(salt)]
    c = a_sum
    new = hashlib.new
    for i in range(rounds):
        step = new(algorithm, p if i & 1 else c)
        if i % 3:
            step.update(s)
        if i % 7:
            step.update(p)
        step.update(c if i & 1 else p)
        c = step.digest()
    groups, tail, tail_chars = _sha_groups(size)
    text = b"".join(_b64_from_24bit(c[x], c[y], c[z], 4) for x, y, z in groups)
    b2, b1, b0 = (c[k] if k >= 0 else 0 for k in tail)
    text += _b64_from_24bit(b2, b1, b0, tail_chars)
    prefix = f"{magic}rounds={rounds}$" if custom else magic
    return prefix + salt.decode("ascii") + "$" + text.decode("ascii")


def scheme(stored: str) -> str:
    """The hash scheme of an htpasswd entry's hash (nginx's reading of its prefix)."""
    if stored.startswith("$apr1$"):
        return "apr1"
    if stored.startswith("{PLAIN}"):
        return "plain"
    if stored.startswith("{SHA}"):
        return "sha1"
    if stored.startswith("{SSHA}"):
        return "ssha"
    if stored.startswith(_BCRYPT):
        return "bcrypt"
    if stored.startswith("$1$"):
        return "md5"
    if stored.startswith("$5$"):
        return "sha256"
    if stored.startswith("$6$"):
        return "sha512"
    if len(stored) == 13 and all(ord(ch) in _ITOA64 for ch in stored):
        return "des"
    return "unknown"


_FAST = frozenset({"plain", "sha1", "ssha"})


def supported(stored: str) -> bool:
    """Whether a hash can ever match here (DES needs Python's crypt module; unknown schemes never match)."""
    kind = scheme(stored)
    return kind != "unknown" and (kind != "des" or _crypt is not None)


def slow(stored: str) -> bool:
    """Whether checking a password against `stored` should run off the event loop."""
    return scheme(stored) not in _FAST


def verify(password: bytes, stored: str) -> bool:
    """Whether `password` matches the htpasswd hash `stored` (constant-time comparison of the results)."""
    check = _CHECKS.get(scheme(stored))
    try:
        return check is not None and check(password, stored)
    except (ValueError, UnicodeError):
        return False  # a malformed hash (bad salt, bad base64): never matches


def _equal(a: str | bytes, b: str | bytes) -> bool:
    left = a.encode("latin-1") if isinstance(a, str) else a
    right = b.encode("latin-1") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def _apr1(password: bytes, stored: str) -> bool:
    salt = stored[6:].split("$", 1)[0].encode("ascii")
    return _equal(md5_crypt(password, salt, b"$apr1$"), stored)


def _md5(password: bytes, stored: str) -> bool:
    salt = stored[3:].split("$", 1)[0].encode("ascii")
    return _equal(md5_crypt(password, salt), stored)


def _sha(password: bytes, stored: str) -> bool:
    return _equal(sha_crypt(password, stored), stored)


def _bcrypt(password: bytes, stored: str) -> bool:
    # bcrypt reads at most 72 bytes of the password (the package raises beyond: cut as crypt(3) does).
    return bcrypt.checkpw(password[:72], stored.encode("ascii"))


def _plain(password: bytes, stored: str) -> bool:
    return _equal(password, stored[7:].encode("utf-8"))


def _sha1(password: bytes, stored: str) -> bool:
    return _equal(base64.b64encode(hashlib.sha1(password).digest()), stored[5:].encode("ascii"))


def _ssha(password: bytes, stored: str) -> bool:
    raw = base64.b64decode(stored[6:], validate=True)
    if len(raw) <= 20:
        return False
    digest, salt = raw[:20], raw[20:]
    return _equal(hashlib.sha1(password + salt).digest(), digest)


def _des(password: bytes, stored: str) -> bool:
    if _crypt is None:
        return False
    result = _crypt.crypt(password.decode("utf-8", "replace"), stored)
    return result is not None and _equal(result, stored)


_CHECKS: dict[str, Callable[[bytes, str], bool]] = {
    "apr1": _apr1, "md5": _md5, "sha256": _sha, "sha512": _sha, "bcrypt": _bcrypt, "plain": _plain, "sha1": _sha1,
    "ssha": _ssha, "des": _des}

__all__ = ["md5_crypt", "scheme", "sha_crypt", "slow", "supported", "verify"]
