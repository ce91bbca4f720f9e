"""Routing table: validation, stable split, proportions, shadow share, hot reload."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from augur.serving._routing import (
    BUCKETS,
    Route,
    Router,
    RoutingTable,
    RoutingTableError,
    RoutingTableFile,
    bucket_of,
    load_routing_table,
    parse_routing_table,
    write_routing_table,
)

CANARY = {
    "versions": [
        {"name": "stable", "model_tag": "augur-ensemble:v1", "weight": 80},
        {"name": "canary", "model_tag": "augur-ensemble:v2", "weight": 20},
    ],
    "shadow": {"name": "next", "model_tag": "augur-ensemble:v3", "percent": 50},
}


def test_valid_table_and_roles() -> None:
    table = RoutingTable.model_validate(CANARY)
    assert table.model_tags() == ["augur-ensemble:v1", "augur-ensemble:v2", "augur-ensemble:v3"]
    router = Router(table)
    roles = {router.route(f"k{i}").role for i in range(200)}
    assert roles == {"primary", "canary"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"versions": [{"name": "a", "model_tag": "m:1", "weight": 60}]}, "sum to 100"),
        ({"versions": []}, "versions"),
        (
            {
                "versions": [
                    {"name": "a", "model_tag": "m:1", "weight": 50},
                    {"name": "a", "model_tag": "m:2", "weight": 50},
                ]
            },
            "repeated: a",
        ),
        ({"versions": [{"name": "a", "model_tag": "m:1", "weight": 100, "wieght": 1}]}, "wieght"),
        (
            {
                "versions": [{"name": "a", "model_tag": "m:1", "weight": 100}],
                "shadow": {"name": "s", "model_tag": "m:2", "percent": 150},
            },
            "shadow.percent",
        ),
    ],
)
def test_invalid_tables_are_refused_naming_the_problem(table: dict, message: str) -> None:
    with pytest.raises(RoutingTableError, match=message):
        parse_routing_table(json.dumps(table), "t.json")


def test_not_a_mapping_and_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(RoutingTableError, match="expected a mapping"):
        parse_routing_table("[1, 2]")
    with pytest.raises(RoutingTableError, match="not valid YAML"):
        parse_routing_table("versions: [unclosed")
    with pytest.raises(RoutingTableError, match="cannot read"):
        load_routing_table(tmp_path / "missing.yaml")


def test_yaml_and_atomic_write_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "routes.yaml"
    p.write_text(
        "versions:\n  - {name: stable, model_tag: 'm:1', weight: 100}\n"
        "shadow: {name: s, model_tag: 'm:2', percent: 10}\n"
    )
    table = load_routing_table(p)
    assert table.shadow is not None and table.shadow.percent == 10
    out = write_routing_table(CANARY, tmp_path / "sub" / "routes.json")
    assert load_routing_table(out) == RoutingTable.model_validate(CANARY)
    assert not [f for f in out.parent.iterdir() if f.name.startswith(".")]  # no temp left


def test_bucket_is_stable_and_in_range() -> None:
    # Fixed values: the split must not change between processes or releases.
    assert bucket_of("EURUSD", "route") == bucket_of("EURUSD", "route")
    assert bucket_of("EURUSD", "route") != bucket_of("EURUSD", "shadow")  # independent salts
    assert all(0 <= bucket_of(f"k{i}") < BUCKETS for i in range(1000))


def _binomial_ok(hits: int, n: int, p: float, z: float = 4.0) -> bool:
    return abs(hits - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_canary_proportion_within_binomial_tolerance_over_many_keys() -> None:
    router = Router(RoutingTable.model_validate(CANARY))
    n = 20_000
    canary = sum(router.route(f"client-{i}").name == "canary" for i in range(n))
    assert _binomial_ok(canary, n, 0.20), canary
    shadowed = sum(router.shadow(f"client-{i}") is not None for i in range(n))
    assert _binomial_ok(shadowed, n, 0.50), shadowed


def test_shadow_share_is_independent_of_the_version_split() -> None:
    router = Router(RoutingTable.model_validate(CANARY))
    keys = [f"c{i}" for i in range(20_000)]
    canary_keys = [k for k in keys if router.route(k).name == "canary"]
    shadowed = sum(router.shadow(k) is not None for k in canary_keys)
    assert _binomial_ok(shadowed, len(canary_keys), 0.5)


def test_stickiness_and_zero_weight_versions() -> None:
    table = RoutingTable.model_validate(
        {
            "versions": [
                {"name": "a", "model_tag": "m:1", "weight": 100},
                {"name": "b", "model_tag": "m:2", "weight": 0},
            ]
        }
    )
    router = Router(table)
    assert {router.route(f"k{i}").name for i in range(500)} == {"a"}
    tail = RoutingTable.model_validate(
        {
            "versions": [
                {"name": "a", "model_tag": "m:1", "weight": 0},
                {"name": "b", "model_tag": "m:2", "weight": 100},
            ]
        }
    )
    assert {Router(tail).route(f"k{i}") for i in range(500)} == {Route("b", "m:2", "canary")}
    again = Router(RoutingTable.model_validate(CANARY))
    first = [again.route(f"k{i}").name for i in range(300)]
    assert first == [
        Router(RoutingTable.model_validate(CANARY)).route(f"k{i}").name for i in range(300)
    ]
    assert Router(RoutingTable.single("m:1")).shadow("x") is None


def test_file_hot_reload_keeps_last_good_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_routing_table(RoutingTable.single("m:1", "stable"), tmp_path / "routes.json")
    seen: list[list[str]] = []
    watcher = RoutingTableFile(path, interval=0.05, on_change=lambda t: seen.append(t.model_tags()))
    assert watcher.table.versions[0].model_tag == "m:1"
    assert watcher.check() is False  # unchanged

    write_routing_table(CANARY, path)
    assert watcher.check() is True
    assert watcher.router.route("anything").model_tag in ("augur-ensemble:v1", "augur-ensemble:v2")
    assert seen[-1] == RoutingTable.model_validate(CANARY).model_tags()

    # An invalid table (weights sum to 90) is refused with a clear log line; the last good stays.
    bad = dict(CANARY, versions=[dict(CANARY["versions"][0], weight=70), CANARY["versions"][1]])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(bad))
    os.replace(tmp, path)
    with caplog.at_level("ERROR"):
        assert watcher.check() is False
    assert "sum to 100" in caplog.text and "keeping the last good table" in caplog.text
    assert watcher.table == RoutingTable.model_validate(CANARY)
    assert watcher.rejected == 1

    # A table whose models cannot be loaded is refused too.
    def refuse(_t: RoutingTable) -> None:
        raise ValueError("model 'm:9' cannot be loaded")

    watcher.on_change = refuse
    write_routing_table(RoutingTable.single("m:9"), path)
    assert watcher.check() is False and "m:9" in (watcher.last_error or "")
    path.unlink()
    assert watcher.check() is False and "disappeared" in (watcher.last_error or "")


def test_background_watcher_picks_up_a_change(tmp_path: Path) -> None:
    path = write_routing_table(RoutingTable.single("m:1"), tmp_path / "routes.json")
    watcher = RoutingTableFile(path, interval=0.02)
    watcher.start()
    try:
        write_routing_table(RoutingTable.single("m:2"), path)
        deadline = time.monotonic() + 5
        while watcher.table.versions[0].model_tag != "m:2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.table.versions[0].model_tag == "m:2"
        assert watcher.reloads == 1
    finally:
        watcher.stop()


def test_first_table_must_be_valid(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"versions": []}')
    with pytest.raises(RoutingTableError):
        RoutingTableFile(p)


def test_pick_is_route_and_shadow() -> None:
    router = Router(RoutingTable.model_validate(CANARY))
    keys = [f"p{i}" for i in range(600)]
    assert [router.pick(k) for k in keys] == [(router.route(k), router.shadow(k)) for k in keys]


# --- the split, exactly ------------------------------------------------------------------

THREE = {
    "versions": [
        {"name": "a", "model_tag": "m:1", "weight": 50},
        {"name": "b", "model_tag": "m:2", "weight": 30},
        {"name": "c", "model_tag": "m:3", "weight": 20},
    ],
    "shadow": {"name": "s", "model_tag": "m:9", "percent": 50},
}


def test_bucket_values_are_pinned() -> None:
    """The split must not move between processes or releases: these values are the contract."""
    assert bucket_of("EURUSD", "route") == 3277
    assert bucket_of("EURUSD", "shadow") == 6835
    assert bucket_of("EURUSD") == 5014
    # the salt is a BLAKE2b personalisation: only its first 16 bytes count
    assert bucket_of("EURUSD", "a-salt-longer-than-16-bytes") == 1022
    assert bucket_of("EURUSD", "a-salt-longer-th") == 1022


def test_each_key_goes_where_its_bucket_says() -> None:
    """Cumulative cuts at 50%, 80%, 100% of the buckets; shadow below 50%."""
    router = Router(RoutingTable.model_validate(THREE))
    for i in range(3000):
        key = f"client-{i}"
        b = bucket_of(key, "route")
        expected = "a" if b < 5000 else "b" if b < 8000 else "c"
        assert router.route(key).name == expected
        assert (router.shadow(key) is not None) == (bucket_of(key, "shadow") < 5000)


def test_keys_on_the_cut_lines() -> None:
    router = Router(RoutingTable.model_validate(THREE))
    on_the_line = {"key-10923": 4999, "key-2591": 5000, "key-6211": 7999, "key-12186": 8000}
    assert {k: bucket_of(k, "route") for k in on_the_line} == on_the_line
    assert [router.route(k) for k in on_the_line] == [
        Route("a", "m:1", "primary"),
        Route("b", "m:2", "canary"),
        Route("b", "m:2", "canary"),
        Route("c", "m:3", "canary"),
    ]
    assert bucket_of("key-34303", "shadow") == 4999 and bucket_of("key-4746", "shadow") == 5000
    assert router.shadow("key-34303") == Route("s", "m:9", "shadow")
    assert router.shadow("key-4746") is None
