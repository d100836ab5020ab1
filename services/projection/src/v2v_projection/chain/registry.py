"""Event type (the payload message's full name) -> (payload decoder, handler)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import ChainBuilder

M = TypeVar("M", bound=Message)
Handler = Callable[[ChainBuilder, Fact, Any], None]
Decoder = Callable[[bytes], Message]

HANDLERS: dict[str, tuple[Decoder, Handler]] = {}
# Event types that only move the chain's stage ("" = not even that): their payload is not
# decoded at all, which keeps the derivation fast (they are about half of all events).
STAGE_ONLY: dict[str, str] = {}


def handles(message_class: type[M]) -> Callable[[Callable[[ChainBuilder, Fact, M], None]], Handler]:
    """Registers the decorated function as the handler of `message_class` events."""

    def register(handler: Callable[[ChainBuilder, Fact, M], None]) -> Handler:
        HANDLERS[message_class.DESCRIPTOR.full_name] = (message_class.FromString, handler)
        return handler

    return register


def marks(message_class: type[Message], stage: str) -> None:
    """Events of `message_class` only tell that the chain reached `stage`."""
    STAGE_ONLY[message_class.DESCRIPTOR.full_name] = stage
