"""RFC 6962 Merkle tree hashes and inclusion proofs over stream heads: the reference vectors
of the certificate-transparency implementations, and every proof of trees up to 70 leaves
verifies while any change to leaf, index, size, proof or root is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2v_platform.checkpoints.merkle import (
    EMPTY_ROOT,
    Head,
    HeadTree,
    ProofInvalid,
    inclusion_proof,
    leaf_bytes,
    leaf_hash,
    leaves_of,
    root_of,
    verify_inclusion,
)

# RFC 6962 test leaves and the tree hashes of their first n (certificate-transparency).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_tree_hashes_match_the_rfc_6962_reference_vectors(n: int) -> None:
    assert root_of([leaf_hash(leaf) for leaf in LEAVES[:n]]).hex() == ROOTS[n - 1]


def test_the_empty_tree_and_the_leaf_encoding() -> None:
    assert root_of([]) == EMPTY_ROOT
    digest = bytes(range(32))
    assert leaf_bytes("a", 258, digest) == b"a\x00" + bytes([0, 0, 0, 0, 0, 0, 1, 2]) + digest


def test_heads_are_leaves_in_aggregate_id_order_whatever_the_mapping_order() -> None:
    heads = {f"agg-{n}": Head(n, bytes([n]) * 32) for n in (3, 1, 2)}
    ordered = {a: heads[a] for a in sorted(heads)}
    assert leaves_of(heads) == leaves_of(ordered)
    changed = dict(heads, **{"agg-2": Head(3, bytes([9]) * 32)})
    assert root_of(leaves_of(changed)) != root_of(leaves_of(heads))


_CHECKPOINTS = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from([f"agg-{n:02}" for n in range(40)]),
            st.integers(min_value=1, max_value=9),
        ),
        max_size=12,
    ),
    max_size=8,
)


@given(_CHECKPOINTS)
def test_a_head_tree_folded_checkpoint_by_checkpoint_has_the_root_of_all_its_heads(
    checkpoints: list[list[tuple[str, int]]],
) -> None:
    tree, heads = HeadTree(), {}
    for changed in checkpoints:
        update = [(a, Head(v, bytes([v]) * 32)) for a, v in changed]
        tree.update(update)
        heads.update(update)
        assert len(tree) == len(heads)
        assert tree.root() == root_of(leaves_of(heads))


@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_inclusion_proof_verifies_and_no_altered_one_does(
    n: int, data: st.DataObject
) -> None:
    leaves = [leaf_hash(n.to_bytes(4, "big") + bytes([i])) for i in range(n)]
    root = root_of(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = inclusion_proof(index, leaves)
    verify_inclusion(index, n, leaves[index], proof, root)
    other = leaf_hash(b"not in the tree")
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, n, other, proof, root)
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, n, leaves[index], proof, leaf_hash(b"another root"))
    if n > 1:
        with pytest.raises(ProofInvalid):
            verify_inclusion((index + 1) % n, n, leaves[index], proof, root)
        with pytest.raises(ProofInvalid):
            verify_inclusion(index, n, leaves[index], proof[:-1], root)
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, n, leaves[index], [*proof, leaves[0]], root)
    with pytest.raises(ProofInvalid):
        verify_inclusion(n, n, leaves[index], proof, root)
