"""The features stage: Feast views over a small click log, point-in-time joins, online lookups."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from aim.cli import app
from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.data.splits import SPLITS
from aim.errors import ConfigError
from aim.features.assemble import assemble_dataset
from aim.features.definitions import feast_objects
from aim.features.export import export_views
from aim.features.layout import feast_layout, read_manifest, write_manifest
from aim.features.online import online_attributes
from aim.features.prepared import connect_events, read_prepared_meta
from aim.features.store import apply_objects, materialize_all, open_store, repo_config
from aim.features.views import check_views, resolve_views
from tests.conftest import write_params

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
TABLE = {
    "path": "clicks.csv",
    "label": {"column": "click"},
    "categorical": ["user_id", "item_id", "age", "gender", "city"],
    "numeric": ["price"],
    "multi_hot": {"genres": "|"},
    "timestamp": {"column": "ts"},
    "entities": ["user_id", "item_id"],
}
USER_FIELDS = ["user_id", "age", "gender"]
ITEM_FIELDS = ["item_id", "genres"]


def write_clicks(path: Path, rows: int = 3000, users: int = 60, items: int = 40, seed: int = 3) -> None:
    """Users with a fixed age and gender, items with fixed genres; city and price vary per event."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, users)
    gender = rng.choice(["F", "M"], users)
    names = np.array(["action", "comedy", "drama", "horror", "scifi", "war"])
    genres = ["|".join(rng.choice(names, rng.integers(1, 4), replace=False)) for _ in range(items)]
    u, i = rng.integers(0, users, rows), rng.integers(0, items, rows)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{k}" for k in u],
            "item_id": [f"i{k}" for k in i],
            "age": age[u],
            "gender": gender[u],
            "city": rng.choice(["paris", "lyon", "nice", "lille"], rows),
            "price": np.round(rng.exponential(30, rows), 2),
            "genres": [genres[k] for k in i],
            "ts": 1_700_000_000 + np.cumsum(rng.integers(1, 600, rows)),
            "click": (rng.random(rows) < 0.3).astype(int),
        }
    )
    frame.to_csv(path, index=False)


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with the click log prepared and the features stage run through the CLI."""
    root = tmp_path_factory.mktemp("features")
    write_clicks(root / "clicks.csv")
    params_file = write_params(root, {"source": "table", "table": TABLE}, features={"enabled": True})
    _run("prepare", "--params", str(params_file))
    result = _run("features", "--params", str(params_file))
    return root, load_params(params_file), result.output


def _same_arrays(a: PreparedData, b: PreparedData) -> None:
    for split in SPLITS:
        x, y = a.split(split), b.split(split)
        assert len(x) == len(y)
        for name in ("fields", "labels", "timestamps"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=f"{split} {name}")
        for name, (ids, mask) in x.multi_hot.items():
            np.testing.assert_array_equal(ids, y.multi_hot[name][0], err_msg=f"{split} {name} ids")
            np.testing.assert_array_equal(mask, y.multi_hot[name][1], err_msg=f"{split} {name} mask")


def test_stage_reproduces_the_prepared_arrays_for_static_attributes(project):
    root, params, output = project
    assert "user_id[user_id, age, gender]" in output and "item_id[item_id, genres]" in output
    assert params.training_dir() == root / "data" / "features"
    prepared, built = PreparedData(root / "data" / "prepared"), PreparedData(params.training_dir())
    _same_arrays(prepared, built)
    assert built.vocab_sizes == prepared.vocab_sizes and built.n_multi_hot == 1
    batch = next(built.split("train").batches(256, shuffle=True, seed=1))  # what the model stages take
    assert batch["fields"].shape == (256, 6) and batch["genres.ids"].shape[0] == 256

    entry = built.meta["features"]
    assert entry["views"] == {"user_id": USER_FIELDS, "item_id": ITEM_FIELDS}
    assert entry["missing_rows"] == {s: {"user_id": 0, "item_id": 0} for s in SPLITS}
    assert built.meta["data_version"] == prepared.meta["data_version"]
    metrics = json.loads((root / "metrics" / "features.json").read_text())
    assert metrics["rows"] == prepared.meta["splits"] and metrics["view_rows"] == {"user_id": 60, "item_id": 40}
    assert (root / "data" / "feast" / "sources" / "user_id.parquet").exists()
    assert not list((root / "data").glob(".features.tmp-*"))


def test_derived_views_and_checked_configured_views(project):
    root, params, _ = project
    prepared = params.path(params.data.output_dir)
    meta = read_prepared_meta(prepared)
    con = connect_events(prepared)
    # city and price vary per event: they stay event-level
    assert resolve_views(con, meta, None) == {"user_id": USER_FIELDS, "item_id": ITEM_FIELDS}
    assert resolve_views(con, meta, {"user_id": ["gender", "user_id"]}) == {"user_id": ["user_id", "gender"]}
    with pytest.raises(ConfigError, match="no field 'height'"):
        check_views({"user_id": ["height"]}, meta)
    with pytest.raises(ConfigError, match="not an entity"):
        check_views({"city": ["city"]}, meta)
    with pytest.raises(ConfigError, match="both user_id and item_id"):
        check_views({"user_id": ["age"], "item_id": ["age"]}, meta)


def test_online_features_equal_the_latest_offline_values(project):
    root, params, _ = project
    store, manifest = open_store(params), read_manifest(feast_layout(params))
    events = pd.concat([pd.read_parquet(params.path(f"data/prepared/parquet/{s}.parquet")) for s in SPLITS])
    latest = events.sort_values("timestamp").groupby("raw_user_id").last()
    keys = ["u3", "u17", "u42", "nobody"]
    got = online_attributes(store, manifest, "user_id", keys)
    for name in USER_FIELDS:
        assert got[name].tolist() == [*latest.loc[keys[:3], name].tolist(), 0]

    items = events.sort_values("timestamp").groupby("raw_item_id").last()
    ids, mask = online_attributes(store, manifest, "item_id", ["i5", "i0", "unknown"])["genres"]
    assert ids.shape == mask.shape == (3, PreparedData(params.training_dir()).fields[-1]["max_len"])
    for row, key in enumerate(["i5", "i0"]):
        assert ids[row][mask[row] == 1].tolist() == list(items.loc[key, "genres"])
    assert mask[2].sum() == 0


def _rewrite(path: Path, frame: pd.DataFrame) -> None:
    """Overwrite a parquet file with ``frame``, keeping the file's schema."""
    pq.write_table(pa.Table.from_pandas(frame, schema=pq.read_schema(path), preserve_index=False), path)


def _changing_copy(params, target: Path) -> tuple[str, int, int, int, int]:
    """Copy the prepared parquet; the busiest user's age goes A -> B -> A at two of its event times."""
    shutil.copytree(params.path(params.data.output_dir), target, ignore=shutil.ignore_patterns("arrays"))
    frames = {s: pd.read_parquet(target / "parquet" / f"{s}.parquet") for s in SPLITS}
    events = pd.concat(frames.values())
    user = events["raw_user_id"].value_counts().index[0]
    times = np.sort(events.loc[events["raw_user_id"] == user, "timestamp"].to_numpy())
    t1, t2 = int(times[len(times) // 3]), int(times[2 * len(times) // 3])
    old = int(events.loc[events["raw_user_id"] == user, "age"].iloc[0])
    new = old % (int(events["age"].max())) + 1
    for split, frame in frames.items():
        middle = (frame["raw_user_id"] == user) & (frame["timestamp"] >= t1) & (frame["timestamp"] < t2)
        frame.loc[middle, "age"] = np.int32(new)
        _rewrite(target / "parquet" / f"{split}.parquet", frame)
    return user, old, new, t1, t2


def test_point_in_time_joins_with_changing_and_late_attributes(project, tmp_path):
    _, base, _ = project
    prepared = tmp_path / "prepared"
    user, old, new, t1, t2 = _changing_copy(base, prepared)
    params = load_params(
        write_params(
            tmp_path,
            {"output_dir": str(prepared)},
            features={"enabled": True, "registry": f"sqlite:///{tmp_path / 'registry.sqlite'}", "ttl_days": 3650},
        )
    )
    meta = read_prepared_meta(prepared)
    layout = feast_layout(params)
    con = connect_events(prepared)
    views = resolve_views(con, meta, {"user_id": USER_FIELDS, "item_id": ITEM_FIELDS})
    assert resolve_views(con, meta, None)["user_id"] == ["user_id", "gender"]  # age now changes
    manifest = export_views(con, meta, views, layout, params.features.project, params.features.ttl_days)
    con.close()
    write_manifest(layout, manifest)

    table = pd.read_parquet(layout.source("user_id"))
    history = table[table["raw_user_id"] == user].sort_values("event_timestamp")
    assert history["age"].tolist() == [old, new, old]
    assert history["event_timestamp"].iloc[1] == pd.Timestamp(t1, unit="s", tz="UTC")
    # a late user: attributes stamped one hour after that user's last event
    late = "u7" if user != "u7" else "u8"
    last_event = pd.concat([pd.read_parquet(prepared / "parquet" / f"{s}.parquet") for s in SPLITS])
    last_event = last_event.loc[last_event["raw_user_id"] == late, "timestamp"].max()
    table.loc[table["raw_user_id"] == late, "event_timestamp"] = pd.Timestamp(last_event + 3600, unit="s", tz="UTC")
    _rewrite(layout.source("user_id"), table)

    store = open_store(params)
    assert store.config.registry.registry_type == "sql"
    apply_objects(store, feast_objects(manifest, layout))
    materialize_all(store, manifest)
    results = assemble_dataset(prepared, meta, tmp_path / "features", store, manifest, chunk_rows=1000)

    built = PreparedData(tmp_path / "features")
    single = [f["name"] for f in meta["fields"] if f["kind"] != "multi_hot"]
    user_cols = [single.index(name) for name in USER_FIELDS]
    age_col = single.index("age")
    missing = 0
    for split in SPLITS:
        frame = pd.read_parquet(prepared / "parquet" / f"{split}.parquet")
        arrays = built.split(split)
        mine = (frame["raw_user_id"] == user).to_numpy()
        expected_age = np.where((frame["timestamp"] >= t1) & (frame["timestamp"] < t2), new, old)[mine]
        np.testing.assert_array_equal(arrays.fields[mine, age_col], expected_age)  # old, then new, then old
        gone = (frame["raw_user_id"] == late).to_numpy()
        assert (np.asarray(arrays.fields[gone][:, user_cols]) == 0).all()  # stamped after: not joined
        assert results[split].missing == {"user_id": int(gone.sum()), "item_id": 0}
        others = ~gone
        np.testing.assert_array_equal(arrays.fields[others, age_col], frame.loc[others, "age"].to_numpy())
        missing += int(gone.sum())
    assert missing > 0
    assert built.meta["features"]["missing_rows"]["train"]["user_id"] == results["train"].missing["user_id"]

    online = online_attributes(store, manifest, "user_id", [user, late])
    assert online["age"].tolist()[0] == old  # the latest value


def test_feast_repo_folder_matches_the_code(project):
    root, params, _ = project
    shutil.copytree(ROOT / "features", root / "features", dirs_exist_ok=True)
    names = runpy.run_path(str(root / "features" / "definitions.py"))
    built = feast_objects(read_manifest(feast_layout(params)), feast_layout(params))
    assert {k for k in names if k.startswith(("entity_", "source_", "view_"))} == set(built.by_name())
    assert names["view_user_id_attributes"] == built.by_name()["view_user_id_attributes"]

    from feast.repo_config import load_repo_config

    yaml_cfg = load_repo_config(root / "features", root / "features" / "feature_store.yaml")
    code_cfg = repo_config(params)
    assert yaml_cfg.project == code_cfg.project == load_params(ROOT / "params.yaml").features.project
    assert (root / "features" / yaml_cfg.registry.path).resolve() == Path(code_cfg.registry.path).resolve()
    assert (root / "features" / yaml_cfg.online_store.path).resolve() == Path(code_cfg.online_store.path).resolve()
    assert yaml_cfg.entity_key_serialization_version == code_cfg.entity_key_serialization_version == 3
    assert yaml_cfg.offline_store.type == code_cfg.offline_store.type == "duckdb"


def test_no_entities_means_a_plain_copy_and_disabled_does_nothing(tmp_path):
    write_clicks(tmp_path / "clicks.csv", rows=600)
    table = {**TABLE, "entities": []}
    params_file = write_params(tmp_path, {"source": "table", "table": table}, features={"enabled": True})
    _run("prepare", "--params", str(params_file))
    output = _run("features", "--params", str(params_file)).output
    assert "no entities in the data, nothing to join" in output
    _same_arrays(PreparedData(tmp_path / "data" / "prepared"), PreparedData(tmp_path / "data" / "features"))
    assert not (tmp_path / "data" / "feast").exists()

    off = yaml.safe_load(params_file.read_text())
    off["features"] = {"enabled": False, "output_dir": "data/other"}
    params_file.write_text(yaml.safe_dump(off))
    assert "features disabled" in _run("features", "--params", str(params_file)).output
    assert not (tmp_path / "data" / "other").exists()


def test_missing_prepared_folder_is_a_clear_error(tmp_path):
    params_file = write_params(tmp_path, {"source": "table", "table": TABLE}, features={"enabled": True})
    result = CliRunner().invoke(app, ["features", "--params", str(params_file)])
    assert result.exit_code == 2
    assert "no prepared dataset" in result.output and "aim prepare" in result.output
