"""Password hashing with Argon2id (argon2-cffi); plain text is never stored or logged."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


# A real Argon2id hash of a throw-away secret, made once with the same parameters as _hasher. It is verified
# against when the user does not exist, so that an unknown user name costs one verification, exactly like a
# wrong password: response time does not tell which user names exist.
_DUMMY = "$argon2id$v=19$m=65536,t=3,p=4$bil9umwMLrFs4wrKUZmTdQ$BOjH2CKYMjvKbFYrUNeRPp7RQ9KM0UErf5DdUKBNuOM"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
