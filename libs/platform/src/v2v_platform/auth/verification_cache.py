"""Remembering verified credentials, so a read does not pay for the same check twice.

An ES256 site token costs ~0.1 ms to verify (signature and claims) and a peer certificate
~20 us to read (PEM, SAN URIs), on every request. What they say cannot change: the same token
bytes always carry the same claims, the same certificate the same site and roles. So the
result of that work is kept in a bounded LRU keyed by the credential's bytes, each entry until
the credential's own expiry. Only successes are kept (a refused credential is checked again
each time) and what CAN change is never cached: revocation is checked on every request against
the revocation lists in force (`Revocations.check_token` / `check_certificate`, a dictionary
look-up), so a revocation takes effect exactly as fast as without the cache.

`V2V_TOKEN_CACHE_SIZE` sets the number of entries of each cache (default
DEFAULT_CACHE_SIZE; 0 turns caching off: every request verifies its credential in full).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

CACHE_SIZE_ENV = "V2V_TOKEN_CACHE_SIZE"
DEFAULT_CACHE_SIZE = 4096

K = TypeVar("K")
V = TypeVar("V")


def cache_size_from_env() -> int:
    """`V2V_TOKEN_CACHE_SIZE` (default DEFAULT_CACHE_SIZE); ValueError naming it when it is
    not a whole number >= 0."""
    text = os.environ.get(CACHE_SIZE_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_SIZE
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise ValueError(f"{CACHE_SIZE_ENV}={text!r}: expected a whole number >= 0 (0: off)")
    return size


class VerificationCache(Generic[K, V]):
    """A thread-safe LRU of at most `size` verified credentials, each until its expiry (epoch
    seconds, by `clock`); `size` 0 keeps nothing."""

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        if size < 0:
            raise ValueError(f"a verification cache holds >= 0 entries, not {size}")
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """The value verified for `key`, unless there is none or it expired."""
        if not self.size:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            value, expires_at = found
            if self._clock() >= expires_at:
                del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: K, value: V, expires_at: float) -> None:
        """Keep `value` for `key` until `expires_at` (the least recently used entry goes when
        the cache is full)."""
        if not self.size or self._clock() >= expires_at:
            return
        with self._lock:
            self._entries[key] = (value, expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
