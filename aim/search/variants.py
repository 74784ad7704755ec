"""The AutoFIS and AIM variants as switches over one implementation (AIM paper, Table 4).

- ``autofm`` / ``autodeepfm``: FIS with the inner product only; AutoDeepFM has DeepFM's MLP beside
  the gates in search and retrain.
- ``aim_ifs_eds``: FIS only (inner product, shared table); MLP on top in retrain.
- ``aim_eds``: FIS + IFS (four functions, function-wise tables); no dimension search.
- ``aim``: FIS + IFS + EDS, the full machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from aim.models.gated import Deep
from aim.nn.interactions import FUNCTIONS


@dataclass(frozen=True)
class Variant:
    """What one variant searches and how its retrain model looks."""

    functions: tuple[str, ...]
    search_deep: bool  # DeepFM-style MLP beside the gates while searching
    eds: bool  # search the embedding dimensions
    retrain_deep: Deep | None  # MLP in the retrain model: stacked on the interactions, parallel, or none


VARIANTS: dict[str, Variant] = {
    "autofm": Variant(("inner",), search_deep=False, eds=False, retrain_deep=None),
    "autodeepfm": Variant(("inner",), search_deep=True, eds=False, retrain_deep="parallel"),
    "aim_ifs_eds": Variant(("inner",), search_deep=False, eds=False, retrain_deep="stacked"),
    "aim_eds": Variant(FUNCTIONS, search_deep=False, eds=False, retrain_deep="stacked"),
    "aim": Variant(FUNCTIONS, search_deep=False, eds=True, retrain_deep="stacked"),
}
