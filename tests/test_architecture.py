import pytest
import torch
from PIL import Image

from aim.nn.interactions import INNER, OUTER, VECTOR
from aim.search.architecture import Architecture
from aim.search.plots import alpha_heatmap, width_bars

FIELDS = ["user", "item", "age", "city"]


def _searched():
    index = torch.tensor([[0, 1], [0, 1], [1, 2], [2, 3]])
    functions = torch.tensor([INNER, OUTER, VECTOR, INNER])
    alpha = torch.tensor([0.5, -0.2, 0.0, 0.3])  # (item, age) was closed
    arch = Architecture.from_gates(FIELDS, index, functions, alpha, dim=8, function_wise=True)
    return arch.with_positions({"user": list(range(8)), "item": [0, 3, 5, 7]})


def test_from_gates_keeps_open_rows_grouped_by_interaction():
    arch = _searched()
    assert [i.fields for i in arch.interactions] == [["user", "item"], ["age", "city"]]
    assert arch.interactions[0].functions == pytest.approx({"inner": 0.5, "outer": -0.2})
    assert arch.interactions[1].functions == pytest.approx({"inner": 0.3})
    assert [i.order for i in arch.interactions] == [2, 2]


def test_json_round_trip_and_rows(tmp_path):
    arch = _searched().merge(Architecture(FIELDS, [], dim=8)).with_positions({"age": [1, 2]})
    arch.save(tmp_path / "architecture.json")
    loaded = Architecture.load(tmp_path / "architecture.json")
    assert loaded == arch
    assert '"order": 2' in (tmp_path / "architecture.json").read_text()
    index, functions, alpha = loaded.rows(2)
    assert index.tolist() == [[0, 1], [0, 1], [2, 3]]
    assert functions.tolist() == [INNER, OUTER, INNER]
    torch.testing.assert_close(alpha, torch.tensor([0.5, -0.2, 0.3]))
    assert loaded.rows(3)[0].shape == (0, 3)
    assert loaded.widths == {"user": 8, "item": 4, "age": 2, "city": 8}


def test_with_positions_drops_interactions_of_empty_fields():
    arch = _searched().with_positions({"city": []})
    assert [i.fields for i in arch.interactions] == [["user", "item"]]
    assert arch.widths["city"] == 0 and arch.orders == [2]


def test_keep_mask_has_the_used_tables_at_the_kept_positions():
    mask = _searched().keep_mask()
    assert mask.shape == (4, 4, 8)
    assert mask[0, INNER].all() and mask[0, OUTER].all() and not mask[0, VECTOR].any()  # user: inner + outer
    assert mask[1, INNER].nonzero().flatten().tolist() == [0, 3, 5, 7]  # item's kept positions
    assert mask[2, INNER].all() and not mask[2, OUTER].any()  # age only in (age, city) inner
    assert mask.sum() == 8 * 2 + 4 * 2 + 8 + 8
    lone = Architecture(FIELDS, _searched().interactions[:1], dim=8, function_wise=True)
    assert not lone.keep_mask()[3].any() and lone.keep_mask(every_field=True)[3, INNER].all()


def test_malformed_architecture_files_are_refused(tmp_path):
    from aim.errors import ModelError

    with pytest.raises(ModelError, match="not found"):
        Architecture.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Architecture.load(tmp_path / "bad.json")
    data = _searched().to_dict()
    data["interactions"][0]["fields"] = ["user", "nobody"]
    with pytest.raises(ModelError, match="unknown fields"):
        Architecture.from_dict(data)
    with pytest.raises(ModelError, match="malformed"):
        Architecture.from_dict({"fields": FIELDS})


def test_plots_are_written(tmp_path):
    arch = _searched()
    matrix = alpha_heatmap(arch, tmp_path / "alpha.png")
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(0.7) and matrix[1, 2] == 0.0
    width_bars(arch, tmp_path / "widths.png")
    for name in ("alpha.png", "widths.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
