"""Who may author each context's events: the authorship policy of contracts/authorship.yaml.

A record on topic `v2v.<context>.events.v1` is taken only when
- its event type is a message of that topic's package (`v2v.<context>.events.v1.<Message>`:
  a release decision put on the intake topic is not a release decision), and
- its author site (the envelope's `site_id`, whose key signed it) holds, in the consortium key
  ring, one of the roles entitled to author that context's events.

The policy is embedded here (`AUTHORS`), so a service image needs no contracts directory and
no YAML parser; a unit test keeps it equal to contracts/authorship.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.auth.identity import Role
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import CHECK_AUTHORSHIP, CHECK_EVENT_TYPE, Break, Location
from v2v_platform.errors import InvalidInput

AUTHORS: Mapping[str, frozenset[Role]] = {
    "intake": frozenset({Role.COLLECTION}),
    "manufacturing": frozenset({Role.MANUFACTURING}),
    "logistics": frozenset({Role.COURIER}),
    "release": frozenset({Role.QC}),
    "infusion": frozenset({Role.INFUSION}),
}
"""contracts/authorship.yaml: the roles entitled to author each context's events (the
logistics service runs at the courier company's site)."""


@dataclass(frozen=True)
class AuthorshipPolicy:
    """`authors`: the entitled roles by context. `event_packages`: by topic, the package its
    event types belong to when it is not the topic's own name (tests whose relay publishes
    `google.protobuf.Struct` payloads)."""

    authors: Mapping[str, frozenset[Role]] = field(default_factory=lambda: dict(AUTHORS))
    event_packages: Mapping[str, str] = field(default_factory=dict)
    _contexts: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """`context_of` by topic, as first asked (a handful of topics, millions of checks)."""

    def __post_init__(self) -> None:
        unknown = set(self.authors) - set(CONTEXTS)
        if unknown:
            raise ValueError(f"authorship for unknown context(s): {', '.join(sorted(unknown))}")

    def context_of(self, topic: str) -> str | None:
        for context in self.authors:
            if topic_for(context) == topic:
                return context
        return None

    def check(self, envelope: Envelope, location: Location, keys: KeyRing) -> list[Break]:
        """The event type belongs to the record's topic; its site may author that topic."""
        topic = location.topic
        try:
            context = self._contexts[topic]
        except KeyError:
            context = self._contexts[topic] = self.context_of(topic)
        if context is None:
            return [
                _break(CHECK_AUTHORSHIP, envelope, location, f"no authorship rule for {topic!r}")
            ]
        breaks = []
        package = self.event_packages.get(topic, topic)
        if envelope.event_type.rpartition(".")[0] != package:
            detail = f"event type {_short(envelope.event_type)!r} is not an event of {topic}"
            breaks.append(_break(CHECK_EVENT_TYPE, envelope, location, detail))
        entitled = self.authors[context]
        held = keys.roles_of(envelope.site_id)
        if not held & entitled:
            detail = (
                f"site {_short(envelope.site_id)!r} (roles: {_names(held) or 'none'}) may not"
                f" author {context} events (needs: {_names(entitled)})"
            )
            breaks.append(_break(CHECK_AUTHORSHIP, envelope, location, detail))
        return breaks


AUTHORSHIP = AuthorshipPolicy()
"""The consortium's policy (contracts/authorship.yaml)."""


def _names(roles: frozenset[Role]) -> str:
    return ", ".join(sorted(role.value for role in roles))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _break(check: str, envelope: Envelope, location: Location, detail: str) -> Break:
    return Break(check, location, envelope.aggregate_id, envelope.aggregate_version, detail)


def check_names_its_author(what: str, named_site: str, author: str) -> None:
    """A fact that names the site that did it (e.g. the enrolling site of an enrolment) is a
    fact only when that site signed it: InvalidInput (the consumers skip it, logged) when a
    verified envelope's author names another site."""
    if named_site != author:
        raise InvalidInput(f"{what} by {author} names {named_site!r} as the site that did it")
