"""The kernel's aggregate cache: a command reads only the events after the cached version
(issue 18 item 2), so its latency does not grow with the aggregate's stream.

`CachedRepository` keeps up to V2V_AGGREGATE_CACHE_SIZE aggregates (least recently used
evicted; 0 disables the cache: every read replays the whole stream). Every read of a cached
aggregate is *fast-forwarded*: the events stored after its cached version are read and applied
first (eventsourcing's fast-forward), so writes by another application instance on the same
store (another process, another worker) are always seen, and a command that lost an
optimistic-concurrency race re-reads the winner's events when `retrying` tries again.

The caller gets its own copy (`copy_aggregate`), never the cached object: a command that
mutates its copy and is then refused (raises before saving) or whose save fails leaves the
cache as the store has it. The cache is never written from a save: only what was read back
from the store goes in. A fast-forward that fails leaves nothing cached for the aggregate (it
is taken out while it is brought up to date, under a per-aggregate lock, and put back only
when that succeeded), so the next read replays the stream.

Snapshots were not chosen: they still replay up to an interval of events per command, need
every aggregate's state transcoded (sets, value objects), and add a table to every store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    ProjectorFunction,
    Repository,
    project_aggregate,
)
from eventsourcing.domain import TDomainEvent, TMutableOrImmutableAggregate
from eventsourcing.persistence import EventStore

SETTING = "V2V_AGGREGATE_CACHE_SIZE"
DEFAULT_SIZE = 1000
"""Aggregates kept per application (per process): a Shipment of 1,000 events (1,000 readings)
holds ~0.1 MB, most aggregates a few kB."""
MAX_SIZE = 1_000_000

T = TypeVar("T")


def cache_size(env: Mapping[str, str]) -> int:
    """V2V_AGGREGATE_CACHE_SIZE from an application's environment (which includes the
    process's): how many aggregates to keep, 0 for none; DEFAULT_SIZE when unset.
    ValueError naming the variable when it is not a whole number 0..MAX_SIZE."""
    text = (env.get(SETTING) or "").strip()
    if not text:
        return DEFAULT_SIZE
    try:
        size = int(text)
    except ValueError:
        size = -1
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"{SETTING}: must be a whole number from 0 to {MAX_SIZE} (got {text!r})")
    return size


def construct_repository(
    events: EventStore[UUID], snapshots: EventStore[UUID] | None, size: int
) -> Repository[UUID]:
    """The cached repository, or eventsourcing's plain one when `size` is 0 (eventsourcing's
    own AGGREGATE_CACHE_* variables are not used: this is the one cache)."""
    if size == 0:
        return Repository(event_store=events, snapshot_store=snapshots)
    return CachedRepository(events, snapshots, size)


class CachedRepository(Repository[UUID]):
    """A repository with a bounded, fast-forwarded, copy-on-read aggregate cache."""

    def __init__(
        self, events: EventStore[UUID], snapshots: EventStore[UUID] | None, maxsize: int
    ) -> None:
        super().__init__(event_store=events, snapshot_store=snapshots)  # its own cache: off
        self.maxsize = maxsize
        self._cached: OrderedDict[UUID, Any] = OrderedDict()
        self._guard = threading.Lock()
        self._locks: dict[UUID, tuple[threading.Lock, int]] = {}

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: ProjectorFunction[
            TMutableOrImmutableAggregate, TDomainEvent
        ] = project_aggregate,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> TMutableOrImmutableAggregate:
        """The aggregate as stored now (a copy of it; `deepcopy_from_cache=False` only for a
        reader that never changes it); a past `version` is read from the store. Every read is
        brought up to date (`fastforward_skipping` is not used)."""
        if version is not None:
            return super().get(aggregate_id, version=version, projector_func=projector_func)
        with self._locked(aggregate_id):
            aggregate: Any = self._take(aggregate_id)
            if aggregate is None:
                aggregate = super().get(aggregate_id, projector_func=projector_func)
            else:
                newer = self.event_store.get(originator_id=aggregate_id, gt=aggregate.version)
                aggregate = projector_func(aggregate, cast("Iterable[TDomainEvent]", newer))
                if aggregate is None:  # pragma: no cover - no projector ends a stream here
                    raise AggregateNotFoundError(aggregate_id)
            self._keep(aggregate_id, aggregate)
            result: TMutableOrImmutableAggregate = (
                copy_aggregate(aggregate) if deepcopy_from_cache else aggregate
            )
            return result

    def evict(self, aggregate_id: UUID) -> None:
        with self._guard:
            self._cached.pop(aggregate_id, None)

    def cached_ids(self) -> list[UUID]:
        """The aggregates kept, least recently used first."""
        with self._guard:
            return list(self._cached)

    def _take(self, aggregate_id: UUID) -> Any:
        with self._guard:
            return self._cached.pop(aggregate_id, None)

    def _keep(self, aggregate_id: UUID, aggregate: Any) -> None:
        with self._guard:
            self._cached[aggregate_id] = aggregate
            while len(self._cached) > self.maxsize:
                self._cached.popitem(last=False)

    @contextmanager
    def _locked(self, aggregate_id: UUID) -> Iterator[None]:
        """One reader at a time brings an aggregate up to date and copies it."""
        with self._guard:
            lock, users = self._locks.get(aggregate_id, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[aggregate_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[aggregate_id]
                if users == 1:
                    del self._locks[aggregate_id]
                else:
                    self._locks[aggregate_id] = (lock, users - 1)


# copying


_ATOMIC: set[type] = set(
    {
        str,
        bytes,
        int,
        float,
        complex,
        bool,
        type(None),
        datetime,
        date,
        time,
        timedelta,
        timezone,
        Decimal,
        UUID,
        range,
        type,
    }
)
"""Types whose instances a copy shares: immutable values, and the classes a domain declares
immutable all through (`immutable`)."""
_OBJECT_HOOKS = ("__reduce_ex__", "__reduce__", "__getstate__")
_CUSTOM_HOOKS = ("__deepcopy__", "__setstate__", "__getnewargs__", "__getnewargs_ex__")
_plain_classes: dict[type, bool] = {}


def immutable(cls: type[T]) -> type[T]:
    """Class decorator: instances of the frozen dataclass `cls` are immutable all through (its
    fields hold only immutable values: strings, numbers, times, tuples of them, other classes
    declared immutable), so `copy_aggregate` shares them as it shares a string, without looking
    inside: a list of thousands of them (a batch's steps) is copied at C speed. TypeError for a
    class that is not a frozen dataclass."""
    if not _is_frozen(cls):
        raise TypeError(
            f"{cls.__name__} is not a frozen dataclass: it cannot be declared immutable"
        )
    _ATOMIC.add(cls)
    return cls


def copy_aggregate(aggregate: T) -> T:
    """A deep copy of `aggregate`: what `copy.deepcopy` gives (shared references stay
    shared), faster on the values aggregates hold. Immutable values (numbers, strings,
    times, UUIDs, enum members) are shared, not copied, as deepcopy shares them; lists,
    dicts and sets are copied; plain objects (the aggregate, dataclasses) are rebuilt from
    copies of their attributes (a frozen one whose attributes are all immutable, all through,
    is shared, as a tuple of immutable values is; so are instances of the classes a domain
    declares `immutable`, without looking inside); anything else goes through
    `copy.deepcopy`."""
    result: T = _copy(aggregate, {})
    return result


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    cls: Any = type(value)
    if cls in _ATOMIC:
        return value
    done = memo.get(id(value), memo)
    if done is not memo:
        return done
    if cls is list or cls is set:
        if _ATOMIC.issuperset(map(type, value)):  # only immutable members: a shallow copy
            members: Any = value.copy()
        elif cls is set:
            members = {_copy(item, memo) for item in value}
        else:
            members = []
            memo[id(value)] = members  # before its items: a list may hold itself
            members.extend([_copy(item, memo) for item in value])
        memo[id(value)] = members
        return members
    if cls is dict:
        if _ATOMIC.issuperset(map(type, value.values())) and _ATOMIC.issuperset(map(type, value)):
            copied: dict[Any, Any] = value.copy()
        else:
            copied = {}
            memo[id(value)] = copied
            for key, item in value.items():
                copied[_copy(key, memo)] = _copy(item, memo)
        memo[id(value)] = copied
        return copied
    if cls is tuple or cls is frozenset:
        if _ATOMIC.issuperset(map(type, value)):
            return value  # immutable all through: deepcopy shares it too
        parts = [_copy(item, memo) for item in value]
        same = all(a is b for a, b in zip(parts, value, strict=True))
        result: Any = value if same else cls(parts)
        memo[id(value)] = result
        return result
    if isinstance(value, Enum):
        return value
    if _is_plain(cls):
        state: dict[str, Any] = value.__dict__
        frozen = _is_frozen(cls)
        if frozen and _ATOMIC.issuperset(map(type, state.values())):
            memo[id(value)] = value
            return value
        twin = cls.__new__(cls)
        memo[id(value)] = twin  # before its attributes: an attribute may lead back to it
        copied = {name: _copy(item, memo) for name, item in state.items()}
        if frozen and all(copied[name] is item for name, item in state.items()):
            # immutable all through (its attributes were shared, like a tuple's items): shared;
            # nothing holds the twin, or an attribute would have been copied
            memo[id(value)] = value
            return value
        twin.__dict__.update(copied)
        return twin
    return deepcopy(value, memo)


def _is_plain(cls: type) -> bool:
    """Whether deepcopy would rebuild an instance as `cls.__new__(cls)` + a copy of its
    `__dict__` (object's reduce, no copy hook of its own, no slot holding a value)."""
    plain = _plain_classes.get(cls)
    if plain is None:
        plain = (
            all(getattr(cls, hook) is getattr(object, hook) for hook in _OBJECT_HOOKS)
            and not any(hasattr(cls, hook) for hook in _CUSTOM_HOOKS)
            and not any(vars(base).get("__slots__") for base in cls.__mro__)
            and any("__dict__" in vars(base) for base in cls.__mro__)
        )
        _plain_classes[cls] = plain
    return plain


def _is_frozen(cls: type) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    return is_dataclass(cls) and params is not None and bool(params.frozen)
