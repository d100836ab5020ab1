"""Finding a service's aggregates and their event classes, for the tests that check every
published event has a payload mapper and every internal one has none."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from eventsourcing.domain import Aggregate

# The library's own base names; a context that defines its own `Created` event keeps it by
# passing exclude=("Event",).
LIBRARY_EVENT_NAMES = ("Event", "Created")


def domain_aggregates(domain_package: ModuleType) -> set[type]:
    """Every aggregate class defined in the modules of `domain_package`."""
    found: set[type] = set()
    for module_info in pkgutil.iter_modules(domain_package.__path__):
        module = importlib.import_module(f"{domain_package.__name__}.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Aggregate)
                and value is not Aggregate
                and value.__module__ == module.__name__
            ):
                found.add(value)
    return found


def event_classes(
    aggregates: Iterable[type], exclude: Iterable[str] = LIBRARY_EVENT_NAMES
) -> set[type]:
    """The event classes nested in the aggregates (without the library's base names)."""
    skipped = set(exclude)
    return {
        value
        for aggregate in aggregates
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and value.__qualname__.startswith(f"{aggregate.__name__}.")
        and value.__name__ not in skipped
    }
