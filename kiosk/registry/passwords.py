"""Password hashing for patrons and staff: argon2id with OWASP's minimum parameters."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def return_big_blocks_to_the_system() -> None:
    """argon2 takes 19 MiB per hash. glibc's dynamic mmap threshold would, after the first
    hash, serve such blocks from the heap and keep them: each server thread would then hold
    19 MiB for good. A fixed threshold keeps them mmapped, so a freed hash is given back.
    Called once by the app factories (a process setting, not an import's side effect)."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


@cache
def dummy_hash() -> str:
    """A hash to verify against when no account matches, so a log-in costs the same time
    whether or not the account exists. Made on first use, not at import."""
    return PASSWORDS.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return PASSWORDS.hash(password)


def needs_rehash(password_hash: str) -> bool:
    return PASSWORDS.check_needs_rehash(password_hash)


def verify(password_hash: str, password: str) -> bool:
    try:
        return PASSWORDS.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
