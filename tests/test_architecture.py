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
    return Architecture.from_gates(FIELDS, index, functions, alpha, widths={"user": 8, "item": 4})


def test_from_gates_keeps_open_rows_grouped_by_interaction():
    arch = _searched()
    assert [i.fields for i in arch.interactions] == [["user", "item"], ["age", "city"]]
    assert arch.interactions[0].functions == pytest.approx({"inner": 0.5, "outer": -0.2})
    assert arch.interactions[1].functions == pytest.approx({"inner": 0.3})
    assert [i.order for i in arch.interactions] == [2, 2]


def test_json_round_trip_and_rows(tmp_path):
    arch = _searched().merge(Architecture(FIELDS, [], {"age": 2}))
    arch.save(tmp_path / "architecture.json")
    loaded = Architecture.load(tmp_path / "architecture.json")
    assert loaded == arch
    assert '"order": 2' in (tmp_path / "architecture.json").read_text()
    index, functions, alpha = loaded.rows(2)
    assert index.tolist() == [[0, 1], [0, 1], [2, 3]]
    assert functions.tolist() == [INNER, OUTER, INNER]
    torch.testing.assert_close(alpha, torch.tensor([0.5, -0.2, 0.3]))
    assert loaded.rows(3)[0].shape == (0, 3)
    assert loaded.widths == {"user": 8, "item": 4, "age": 2}


def test_plots_are_written(tmp_path):
    arch = _searched()
    matrix = alpha_heatmap(arch, tmp_path / "alpha.png")
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(0.7) and matrix[1, 2] == 0.0
    width_bars(arch, tmp_path / "widths.png")
    for name in ("alpha.png", "widths.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
