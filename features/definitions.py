"""Feast objects of aim-ctr for the `feast` CLI: the very objects `aim features` applies.

Built by the library (aim/features/definitions.py) from params.yaml one folder up and the
manifest `aim features` exported (data/feast/manifest.json): run `aim features` first.
`feast apply` collects Feast objects from module attributes, hence the globals() update.
"""

from pathlib import Path

from aim.config import load_params
from aim.features.definitions import feast_objects
from aim.features.layout import feast_layout, read_manifest

_params = load_params(Path(__file__).resolve().parent.parent / "params.yaml")
_layout = feast_layout(_params)
globals().update(feast_objects(read_manifest(_layout), _layout).by_name())
