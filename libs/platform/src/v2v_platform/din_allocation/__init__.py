"""Declared DIN allocations: which service numbers which DINs under a facility's FIN.

ISBT 128 gives a facility ONE facility identification number (FIN). At an in-house site both
intake (apheresis bags, `LabelUnits`) and manufacturing (product bags, `Harvest`) number DINs
under it, and a DIN must name one unit of one patient for life (invariant I1). So every issuer
(one site's DIN-issuing service, ``<site>/<context>``: ``HOSP-A/intake``) draws its sequence
numbers from its own declared block, ``first``-``last`` within 1-999999, the same block every
year. Blocks are consortium configuration, kept like the key ring in the PKI directory
(``din-allocations.json``, written by ``python -m v2v_platform.din_allocation declare``):

- a service refuses to start when it has no block under its FIN, or when its block overlaps
  another issuer's under the same FIN (`declared_block`, called by its settings);
- it persists the last number it reserved in its own store (intake reserves runs of
  V2V_NUMBER_RESERVATION_SIZE numbers, default 50, with one write and hands them out from
  memory; replicas share the store and the block, optimistic concurrency keeps their
  reservations apart), so a restart continues after it: numbers of a run not handed out
  before a stop or crash are never issued (gaps are allowed, repeats never);
- it refuses to issue past the end of its block (`DinBlockExhausted`).

Default blocks depend only on the issuing context, so a site's intake and manufacturing never
overlap whatever order they are declared in: intake 1-499999, manufacturing 500000-999999.
Give ``first``/``last`` for anything else (e.g. two sites that share a FIN).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from v2v_platform.auth.identity import InvalidSiteId, parse_site_id
from v2v_platform.errors import Refused
from v2v_platform.ids._fields import fin_problem

ALLOCATIONS_FILE = "din-allocations.json"
FORMAT = 1
FIRST_SEQUENCE = 1
LAST_SEQUENCE = 999_999
DEFAULT_BLOCKS: Mapping[str, tuple[int, int]] = {
    "intake": (1, 499_999),
    "manufacturing": (500_000, LAST_SEQUENCE),
}
"""The block each DIN-issuing context gets unless told otherwise."""
ISSUING_CONTEXTS = tuple(DEFAULT_BLOCKS)
DECLARE_COMMAND = "python -m v2v_platform.din_allocation declare"


class DinAllocationError(ValueError):
    """The DIN allocations are missing, malformed or unsafe; the message says which and how to
    put it right."""


class DinBlockExhausted(Refused):
    """Issuing the DINs asked for would go past the end of the issuer's declared block."""


@dataclass(frozen=True, order=True)
class IssuingService:
    """One site's DIN-issuing service: ``HOSP-A/intake``."""

    site_id: str
    context: str

    def __post_init__(self) -> None:
        try:
            parse_site_id(self.site_id)
        except InvalidSiteId as error:
            raise DinAllocationError(f"DIN issuer {self}: {error}") from None
        if self.context not in ISSUING_CONTEXTS:
            raise DinAllocationError(
                f"DIN issuer {self}: {self.context!r} issues no DINs (expected one of"
                f" {', '.join(ISSUING_CONTEXTS)})"
            )

    @classmethod
    def parse(cls, text: str) -> IssuingService:
        site_id, slash, context = text.strip().partition("/")
        if not slash:
            raise DinAllocationError(
                f"DIN issuer {text!r}: expected SITE/CONTEXT, e.g. HOSP-A/intake"
            )
        return cls(site_id, context)

    def __str__(self) -> str:
        return f"{self.site_id}/{self.context}"


@dataclass(frozen=True)
class DinBlock:
    """The sequence numbers ``first``-``last`` (every year) `issuer` may give under `fin`."""

    fin: str
    issuer: IssuingService
    first: int
    last: int

    def __post_init__(self) -> None:
        problem = fin_problem(self.fin)
        if problem is not None:
            raise DinAllocationError(f"DIN block of {self.issuer}: FIN {self.fin!r} {problem}")
        numbers = (self.first, self.last)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers) or not (
            FIRST_SEQUENCE <= self.first <= self.last <= LAST_SEQUENCE
        ):
            raise DinAllocationError(
                f"DIN block of {self.issuer} under FIN {self.fin}: {self.first!r}-{self.last!r}"
                f" is not a range within {FIRST_SEQUENCE}-{LAST_SEQUENCE}"
            )

    @classmethod
    def default(cls, fin: str, issuer: IssuingService) -> DinBlock:
        first, last = DEFAULT_BLOCKS[issuer.context]
        return cls(fin, issuer, first, last)

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def overlaps(self, other: DinBlock) -> bool:
        """Another issuer's block under the same FIN sharing a sequence number with this one."""
        return (
            self.fin == other.fin
            and self.issuer != other.issuer
            and self.first <= other.last
            and other.first <= self.last
        )

    def next_numbers(self, last_issued: int, count: int) -> list[int]:
        """The `count` numbers to issue after `last_issued` (the issuer's persisted last number,
        0 before the first): from the block's start when nothing of it was issued yet.
        `DinBlockExhausted` when they do not fit in the block."""
        first = max(last_issued + 1, self.first)
        if count < 1 or first + count - 1 > self.last:
            left = max(self.last - first + 1, 0)
            raise DinBlockExhausted(
                f"the DIN block of {self.issuer} under FIN {self.fin} ({self.range_text}) is"
                f" exhausted: {count} DIN(s) asked, {left} left after {last_issued}; declare a"
                f" further block with `{DECLARE_COMMAND}`"
            )
        return list(range(first, first + count))

    @property
    def range_text(self) -> str:
        return f"{self.first}-{self.last}"

    def to_json(self) -> dict[str, Any]:
        return {"fin": self.fin, "issuer": str(self.issuer), "first": self.first, "last": self.last}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> DinBlock:
        try:
            return cls(
                str(entry["fin"]),
                IssuingService.parse(str(entry["issuer"])),
                entry["first"],
                entry["last"],
            )
        except (KeyError, TypeError) as error:
            raise DinAllocationError(f"DIN block {dict(entry)!r} is malformed: {error!r}") from None


@dataclass(frozen=True)
class DinAllocations:
    """Every declared block of the consortium (the content of ``din-allocations.json``)."""

    blocks: tuple[DinBlock, ...] = ()

    # ------------------------------------------------------------------ reading and writing

    @staticmethod
    def path_in(pki_dir: Path) -> Path:
        return pki_dir / ALLOCATIONS_FILE

    @classmethod
    def read(cls, pki_dir: Path) -> DinAllocations:
        """The allocations of the PKI directory; none when it has no allocation file."""
        path = cls.path_in(pki_dir)
        if not path.is_file():
            return cls()
        try:
            return cls.from_json(path.read_text())
        except DinAllocationError as error:
            raise DinAllocationError(f"{path}: {error}") from None

    @classmethod
    def from_json(cls, text: str) -> DinAllocations:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise DinAllocationError(f"not JSON: {error}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise DinAllocationError(f'expected {{"format": {FORMAT}, "allocations": [...]}}')
        entries = document.get("allocations")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise DinAllocationError('"allocations" must be a list of blocks')
        blocks = tuple(DinBlock.from_json(entry) for entry in entries)
        seen: set[tuple[str, IssuingService]] = set()
        for block in blocks:
            key = (block.fin, block.issuer)
            if key in seen:
                raise DinAllocationError(
                    f"{block.issuer} has more than one block under FIN {block.fin}"
                )
            seen.add(key)
        return cls(blocks)

    def to_json(self) -> str:
        ordered = sorted(self.blocks, key=lambda b: (b.fin, b.first, str(b.issuer)))
        document = {"format": FORMAT, "allocations": [block.to_json() for block in ordered]}
        return json.dumps(document, indent=2) + "\n"

    def write(self, pki_dir: Path) -> Path:
        """Replace the PKI directory's allocation file at once (readable by all: it is no
        secret, and every DIN-issuing service reads it)."""
        path = self.path_in(pki_dir)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(self.to_json())
        os.chmod(temporary, 0o644)
        temporary.replace(path)
        return path

    # ------------------------------------------------------------------ questions

    def block_of(self, fin: str, issuer: IssuingService) -> DinBlock | None:
        return next((b for b in self.blocks if b.fin == fin and b.issuer == issuer), None)

    def overlapping(self, block: DinBlock) -> list[DinBlock]:
        """The other issuers' blocks under the same FIN that share numbers with `block`."""
        return [other for other in self.blocks if block.overlaps(other)]

    def overlaps(self) -> list[tuple[DinBlock, DinBlock]]:
        """Every pair of blocks that would give the same DIN twice."""
        pairs = []
        for index, block in enumerate(self.blocks):
            pairs += [(block, other) for other in self.blocks[index + 1 :] if block.overlaps(other)]
        return pairs

    # ------------------------------------------------------------------ declaring

    def declare(
        self,
        fin: str,
        issuer: IssuingService,
        first: int | None = None,
        last: int | None = None,
        *,
        replace_existing: bool = False,
    ) -> DinAllocations:
        """These allocations with `issuer`'s block under `fin`: ``first``-``last``, else its
        context's default block. Unchanged when the same block is declared already;
        `DinAllocationError` when the issuer has another block (unless `replace_existing`) or
        the block would overlap another issuer's."""
        default = DinBlock.default(fin, issuer)
        block = replace(
            default,
            first=default.first if first is None else first,
            last=default.last if last is None else last,
        )
        existing = self.block_of(fin, issuer)
        if existing == block:
            return self
        if existing is not None and not replace_existing:
            raise DinAllocationError(
                f"FIN {fin}, issuer {issuer}: a block is declared already ({existing.range_text});"
                f" replacing it with {block.range_text} needs --replace"
            )
        clash = self.overlapping(block)
        if clash:
            raise DinAllocationError(
                f"FIN {fin}, issuer {issuer}: block {block.range_text} would overlap "
                + "; ".join(f"{other.issuer}'s block {other.range_text}" for other in clash)
                + " under the same FIN (two issuers would give the same DINs): give a disjoint"
                " --first/--last"
            )
        kept = tuple(b for b in self.blocks if b is not existing)
        return DinAllocations((*kept, block))


def declare_all(pki_dir: Path, issuers: Iterable[tuple[str, IssuingService]]) -> DinAllocations:
    """Declare each (FIN, issuer)'s default block in the PKI directory's allocation file unless
    it has a block there already (the demo, compose, tests); written only when it changed."""
    allocations = DinAllocations.read(pki_dir)
    before = allocations
    for fin, issuer in issuers:
        if allocations.block_of(fin, issuer) is None:
            allocations = allocations.declare(fin, issuer)
    if allocations != before or not DinAllocations.path_in(pki_dir).is_file():
        allocations.write(pki_dir)
    return allocations


def declared_block(pki_dir: Path, fin: str, site_id: str, context: str) -> DinBlock:
    """The block the service `context` of `site_id` issues DINs from under `fin`: what it needs
    to start. `DinAllocationError` naming the FIN, the issuer and the problem when there is no
    block, or when it overlaps another issuer's block under the same FIN."""
    issuer = IssuingService(site_id, context)
    path = DinAllocations.path_in(pki_dir)
    fix = f"declare one with `{DECLARE_COMMAND} --out {pki_dir} --fin {fin} --issuer {issuer}`"
    if not path.is_file():
        raise DinAllocationError(
            f"FIN {fin}, issuer {issuer}: no DIN block is declared ({path} does not exist); {fix}"
        )
    allocations = DinAllocations.read(pki_dir)
    block = allocations.block_of(fin, issuer)
    if block is None:
        elsewhere = [b for b in allocations.blocks if b.issuer == issuer]
        under = "".join(f"; it has one under FIN {b.fin}" for b in elsewhere)
        raise DinAllocationError(
            f"FIN {fin}, issuer {issuer}: no DIN block is declared in {path}{under}; {fix}"
        )
    clash = allocations.overlapping(block)
    if clash:
        others = "; ".join(f"{other.issuer}'s block {other.range_text}" for other in clash)
        raise DinAllocationError(
            f"FIN {fin}, issuer {issuer}: its DIN block {block.range_text} overlaps {others}"
            f" under the same FIN in {path}: two issuers would give the same DINs; declare"
            " disjoint blocks"
        )
    return block


__all__ = [
    "ALLOCATIONS_FILE",
    "DEFAULT_BLOCKS",
    "ISSUING_CONTEXTS",
    "DinAllocationError",
    "DinAllocations",
    "DinBlock",
    "DinBlockExhausted",
    "IssuingService",
    "declare_all",
    "declared_block",
]
