"""A replica's names (ADR 0011): its consumer group and store from V2V_PROJECTION_REPLICA;
replica 0 (or none) keeps the names a projection had before replicas existed."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from v2v_platform.config import ConfigurationError, load_settings
from v2v_projection.catch_up import lag_of
from v2v_projection.settings import ProjectionSettings, replica_identity

DSN = "postgresql://projection:secret@db:5432/projection"


def settings(tmp_path: Path, replica: str | None, **more: object) -> ProjectionSettings:
    return load_settings(
        ProjectionSettings,
        site_id="AUDIT-1",
        pki_dir=tmp_path,
        projection_replica=replica,
        **more,
    )


@pytest.mark.parametrize(
    ("given", "identity"),
    [
        (None, None),
        ("", None),
        ("0", "0"),
        ("v2v-projection-0", "0"),
        ("v2v-projection-2", "2"),
        ("007", "7"),
        ("EU-West", "eu-west"),
    ],
)
def test_the_replica_identity_is_the_ordinal_of_a_pod_name_or_a_label(
    given: str | None, identity: str | None
) -> None:
    assert replica_identity(given) == identity


def test_replica_zero_keeps_todays_group_and_store(tmp_path: Path) -> None:
    for replica in (None, "v2v-projection-0"):
        zero = settings(tmp_path, replica, postgres_dsn=DSN, sqlite_path=tmp_path / "p.sqlite")
        assert zero.group_id == "v2v-projection"
        assert zero.store_dsn == DSN
        assert zero.postgres_schema is None
        assert zero.store_sqlite_path == tmp_path / "p.sqlite"


def test_replica_n_has_a_group_and_a_store_of_its_own(tmp_path: Path) -> None:
    two = settings(
        tmp_path,
        "v2v-projection-2",
        consumer_group="v2v-projection-eu",
        postgres_dsn=DSN,
        sqlite_path=tmp_path / "p.sqlite",
    )
    assert two.group_id == "v2v-projection-eu-2"
    assert two.postgres_schema == "projection_replica_2"
    assert two.store_dsn is not None
    assert conninfo_to_dict(two.store_dsn) == {
        **conninfo_to_dict(DSN),
        "options": "-c search_path=projection_replica_2",
    }
    assert two.store_sqlite_path == tmp_path / "p-2.sqlite"
    labelled = settings(tmp_path, "eu-west")
    assert labelled.group_id == "v2v-projection-eu-west"
    assert labelled.postgres_schema == "projection_replica_eu_west"


def test_a_replica_name_that_is_neither_stops_the_projection_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(tmp_path, "a replica; drop table")
    assert any("V2V_PROJECTION_REPLICA" in problem for problem in raised.value.problems)
    with pytest.raises(ConfigurationError) as raised:
        settings(tmp_path, None, catch_up_max_lag=-1)
    assert any("V2V_CATCH_UP_MAX_LAG" in problem for problem in raised.value.problems)


def test_the_lag_counts_every_partition_from_its_stored_offset_or_its_beginning() -> None:
    end = {("a", 0): 500, ("a", 1): 40, ("b", 0): 1000}
    beginning = {("a", 0): 0, ("a", 1): 0, ("b", 0): 900}  # b/0: 900 records deleted (retention)
    lag = lag_of(beginning, end, {("a", 0): 450}, max_lag=45)
    assert (lag.records, lag.behind, lag.partitions, lag.worst) == (190, 2, 3, 100)
    assert not lag.within(45)
    assert lag_of(beginning, end, {("a", 0): 500, ("b", 0): 1000}, 40).within(40)
    assert lag_of({}, {}, {}, 0).within(0)  # no topics yet: nothing to catch up
