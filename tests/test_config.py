import pytest

from aim.config import load_params, parse_overrides
from aim.errors import ConfigError
from tests.conftest import write_params


def test_overrides_are_parsed_as_yaml_and_nested():
    assert parse_overrides(["data.source=criteo", "seed=3", "data.split.train=0.7"]) == {
        "data": {"source": "criteo", "split": {"train": 0.7}},
        "seed": 3,
    }


def test_split_shares_must_sum_to_one(tmp_path):
    path = write_params(tmp_path, {"split": {"train": 0.8, "valid": 0.1, "test": 0.2}})
    with pytest.raises(ConfigError, match="sum to 1"):
        load_params(path)


def test_unknown_key_is_named(tmp_path):
    path = write_params(tmp_path, {"min_cnt": 3})
    with pytest.raises(ConfigError, match="data.min_cnt"):
        load_params(path)


def test_relative_paths_resolve_against_params_folder(tmp_path):
    params = load_params(write_params(tmp_path, {}))
    assert params.path("data/x") == tmp_path / "data/x"


def test_missing_params_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")
