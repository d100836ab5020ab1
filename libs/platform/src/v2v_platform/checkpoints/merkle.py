"""Merkle tree hashes and inclusion proofs of RFC 6962 (section 2.1; verification as in
RFC 9162 section 2.1.3.2), over the stream heads a checkpoint commits to.

A leaf is one stream head: `aggregate_id` (UTF-8), a 0x00 byte, `version` as 8 bytes big
endian, the envelope `hash`. Leaves are ordered by aggregate_id, so the same set of heads
always gives the same tree. Hashes are SHA-256 with the RFC's domain separation: leaf hash =
H(0x00 || leaf), node hash = H(0x01 || left || right); the empty tree's hash is H("").
"""

from __future__ import annotations

import hashlib
from bisect import insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class Head:
    """A stream head. `signatures`: the running digest of the stream's envelope signatures
    up to `version` (`signature_digest`; empty when unknown). It is carried in the checkpoint
    payload, not in the Merkle leaf."""

    version: int
    hash: bytes
    signatures: bytes = b""


def signature_digest(previous: bytes, signature: bytes) -> bytes:
    """d_v = SHA-256(d_{v-1} || signature_v), from d_0 = b"": the digest of a stream's
    envelope signatures in version order, which a checkpoint commits beside each head."""
    return hashlib.sha256(previous + signature).digest()


class ProofInvalid(ValueError):
    """An inclusion proof that does not lead to the root it claims."""


def leaf_bytes(aggregate_id: str, version: int, digest: bytes) -> bytes:
    return aggregate_id.encode() + b"\x00" + version.to_bytes(8, "big") + digest


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaves_of(heads: Mapping[str, Head]) -> list[bytes]:
    """The leaf hashes of `heads` (aggregate id -> head), in tree order."""
    return [leaf_hash(leaf_bytes(a, heads[a].version, heads[a].hash)) for a in sorted(heads)]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 over leaf hashes already computed; bottom-up, O(n)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    level = list(leaf_hashes)
    while len(level) > 1:
        # pairing left to right and carrying an odd last node up gives the RFC's tree
        paired = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(level[0::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class HeadTree:
    """The heads one service's checkpoints committed so far, folded checkpoint by checkpoint,
    with each leaf hash kept: `root()` == `root_of(leaves_of(heads))` without rehashing the
    leaves that did not change (a verifier folds thousands of checkpoints over ~100k heads)."""

    def __init__(self) -> None:
        self.heads: dict[str, Head] = {}
        self._order: list[str] = []  # aggregate ids, sorted (tree order)
        self._leaves: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.heads)

    def update(self, changed: Iterable[tuple[str, Head]]) -> None:
        for aggregate_id, head in changed:
            if aggregate_id not in self.heads:
                insort(self._order, aggregate_id)
            self.heads[aggregate_id] = head
            self._leaves[aggregate_id] = leaf_hash(
                leaf_bytes(aggregate_id, head.version, head.hash)
            )

    def root(self) -> bytes:
        leaves = self._leaves
        return root_of([leaves[aggregate_id] for aggregate_id in self._order])


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 2.1.1: the audit path of leaf `index`."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaf_hashes)}")
    return _path(index, list(leaf_hashes))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), root_of(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_of(leaves[:k])]


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """ProofInvalid unless `proof` shows leaf hash `leaf` at `index` of the tree of
    `tree_size` leaves whose hash is `root` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < tree_size:
        raise ProofInvalid(f"leaf {index} is not in a tree of {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofInvalid("the proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("the proof is shorter than the tree is deep")
    if r != root:
        raise ProofInvalid("the proof leads to another root")
