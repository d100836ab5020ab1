"""The projection converges: any interleaving of the topics (each topic's order kept, as Kafka
keeps a partition's order), with duplicates and redeliveries, gives identical chain views and
KPIs; so does a complete shuffle (parking restores each aggregate's order)."""

from __future__ import annotations

import json
import random
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2v_projection.fold import ChainFold
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history


@lru_cache(maxsize=16)
def history(seed: int, patients: int) -> GeneratedHistory:
    return generate_history(seed, patients)


def folded(records: list[bytes]) -> tuple[str, str, ChainFold]:
    fold = ChainFold()
    for record in records:
        fold.apply_bytes(record)
    chains = json.dumps(fold.chains(), sort_keys=True)
    return chains, json.dumps(fold.kpis(), sort_keys=True), fold


def in_publication_order(generated: GeneratedHistory) -> list[bytes]:
    return [value for values in generated.by_topic.values() for value in values]


def interleaved(generated: GeneratedHistory, rng: random.Random) -> list[bytes]:
    """A random merge of the topics that keeps each topic's own order."""
    queues = [list(values) for values in generated.by_topic.values() if values]
    merged: list[bytes] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged


def with_redeliveries(records: list[bytes], rng: random.Random, count: int) -> list[bytes]:
    """At-least-once delivery: a consumer re-reads a run of records it already had."""
    delivered = list(records)
    for _ in range(count):
        start = rng.randrange(len(records))
        run = records[start : start + rng.randint(1, 30)]
        position = rng.randint(start + len(run), len(delivered))
        delivered[position:position] = run
    return delivered


histories = st.tuples(st.integers(0, 5), st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.randoms(use_true_random=False), st.integers(0, 6))
def test_any_interleaving_with_redeliveries_gives_the_same_projection(
    shape: tuple[int, int], rng: random.Random, redeliveries: int
) -> None:
    generated = history(*shape)
    reference_chains, reference_kpis, _ = folded(in_publication_order(generated))
    records = with_redeliveries(interleaved(generated, rng), rng, redeliveries)

    chains, kpis, fold = folded(records)

    assert chains == reference_chains
    assert kpis == reference_kpis
    assert fold.events_applied == generated.event_count
    assert fold.duplicates_skipped == len(records) - generated.event_count


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.randoms(use_true_random=False))
def test_even_a_full_shuffle_gives_the_same_projection(
    shape: tuple[int, int], rng: random.Random
) -> None:
    generated = history(*shape)
    reference_chains, reference_kpis, _ = folded(in_publication_order(generated))
    records = in_publication_order(generated)
    rng.shuffle(records)

    chains, kpis, fold = folded(records)

    assert chains == reference_chains
    assert kpis == reference_kpis
    assert fold.events_parked == 0


def test_a_generated_history_folds_into_complete_chains() -> None:
    generated = history(1, 3)
    _, _, fold = folded(in_publication_order(generated))
    views: list[dict[str, Any]] = fold.chains()

    assert [view["coi"] for view in views] == sorted(generated.cois)
    for view in views:
        assert view["stage"] == "infused"
        assert view["infusion"]["status"] == "administered"
        assert view["kpis"]["apheresis_to_infusion_hours"] > 0
        assert view["signatures"], "every release decision is e-signed"
        assert not [a for a in view["alerts"] if a["kind"] in ("custody-gap", "double-custody")]


def test_deriving_in_worker_processes_gives_the_same_chains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("v2v_projection.fold.PARALLEL_MINIMUM", 1)
    records = in_publication_order(history(2, 3))
    reference, _, _ = folded(records)
    fold = ChainFold()
    fold.apply_all(records)

    assert json.dumps(fold.chains(workers=2), sort_keys=True) == reference
