"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
# argon2 hashes whatever it is given; an upper bound keeps a megabyte "password" from being a
# cheap way to burn the hub's CPU.
MAX_LENGTH = 256

# The most common passwords of at least MIN_LENGTH characters in public breach corpora.
_COMMON = frozenset(
    {
        "1234567890",
        "0123456789",
        "12345678910",
        "qwertyuiop",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou12",
        "qwerty1234",
        "qwerty12345",
        "qwerty123456",
        "abcdefghij",
        "abc1234567",
        "aaaaaaaaaa",
        "1111111111",
        "0000000000",
        "letmein123",
        "welcome123",
        "administrator",
        "football123",
        "baseball123",
        "princess123",
        "sunshine123",
        "trustno1234",
        "monkey12345",
        "dragon12345",
        "superman123",
        "asdfghjkl1",
        "zxcvbnm123",
        "changeme123",
        "cohort12345",
        "qazwsxedcrfv",
        "michael123",
        "1234567890a",
        "a1234567890",
        "987654321a",
        "9876543210",
        "passwordpassword",
    }
)


class PasswordPolicyError(ValueError):
    """The password breaks a rule; the message says which."""


def check_password_policy(password: str, *, email: str = "", display_name: str = "") -> None:
    """Length and a breach blocklist, as NIST SP 800-63B asks; no composition rules.

    Raises:
        PasswordPolicyError: naming the rule broken.
    """
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"must be at most {MAX_LENGTH} characters long")
    lowered = password.lower()
    if lowered in _COMMON:
        raise PasswordPolicyError("is one of the most commonly used passwords")
    if len(set(password)) < 4:
        raise PasswordPolicyError("must use at least 4 different characters")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        raise PasswordPolicyError("must not contain your email address")
    name = display_name.strip().lower()
    if len(name) >= 4 and name in lowered:
        raise PasswordPolicyError("must not contain your display name")


def normalize_email(email: str) -> str:
    return email.strip().lower()


class PasswordHashing:
    """argon2id with argon2-cffi's defaults (above OWASP's minimum), rehashed when they change."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the account does not exist, so both paths cost the same time.
        self._dummy = self._hasher.hash("cohort-timing-equalizer")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return (
                self._hasher.verify(stored_hash or self._dummy, password)
                and stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
