"""The searched architecture as a plain JSON-able object: ``artifacts/architecture.json``.

Every kept interaction is recorded in field names with its order, its kept functions and their α;
every field with its kept embedding positions and width. Stages hand this object to each other
instead of pasting masks by hand, and models are rebuilt from it (:meth:`Architecture.rows`,
:meth:`Architecture.keep_mask`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aim.errors import ModelError
from aim.jsonfile import read_json
from aim.nn.interactions import FUNCTIONS


@dataclass
class KeptInteraction:
    """One interaction that survived the search."""

    fields: list[str]
    functions: dict[str, float]  # function name -> α

    @property
    def order(self) -> int:
        return len(self.fields)


@dataclass
class Architecture:
    """Kept interactions (any order) and kept embedding dimensions per field.

    ``dim`` is the searched (full) width; ``positions[field]`` the dimensions the field keeps
    (a field not given keeps all ``dim``). ``function_wise``: one table per interaction function.
    """

    fields: list[str]
    interactions: list[KeptInteraction] = field(default_factory=list)
    dim: int = 16
    function_wise: bool = False
    positions: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = {f: list(self.positions.get(f, range(self.dim))) for f in self.fields}

    @classmethod
    def from_gates(
        cls,
        fields: list[str],
        index: torch.Tensor,
        functions: torch.Tensor,
        alpha: torch.Tensor,
        dim: int = 16,
        function_wise: bool = False,
    ) -> Architecture:
        """Keep rows whose gate is non-zero, grouped by interaction (rows of one order)."""
        kept: dict[tuple[int, ...], dict[str, float]] = {}
        for row in torch.nonzero(alpha != 0).flatten().tolist():
            key = tuple(index[row].tolist())
            kept.setdefault(key, {})[FUNCTIONS[int(functions[row])]] = float(alpha[row])
        interactions = [KeptInteraction([fields[i] for i in key], fns) for key, fns in sorted(kept.items())]
        return cls(list(fields), interactions, dim, function_wise)

    @property
    def widths(self) -> dict[str, int]:
        """Kept embedding width per field."""
        return {f: len(self.positions[f]) for f in self.fields}

    @property
    def orders(self) -> list[int]:
        """The interaction orders present, ascending."""
        return sorted({i.order for i in self.interactions})

    def merge(self, other: Architecture) -> Architecture:
        """This architecture plus ``other``'s interactions (e.g. a higher order)."""
        return Architecture(
            self.fields, self.interactions + other.interactions, self.dim, self.function_wise, dict(self.positions)
        )

    def with_positions(self, positions: dict[str, list[int]]) -> Architecture:
        """Set the kept dimensions per field; interactions touching a field that kept none are dropped."""
        empty = {f for f, kept in positions.items() if not kept}
        interactions = [i for i in self.interactions if not empty & set(i.fields)]
        return Architecture(self.fields, interactions, self.dim, self.function_wise, {**self.positions, **positions})

    def rows(self, order: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(index ``[R, p]``, functions ``[R]``, α ``[R]``) of the kept rows of one order."""
        position = {name: i for i, name in enumerate(self.fields)}
        index, fns, alpha = [], [], []
        for inter in self.interactions:
            if inter.order != order:
                continue
            for name, value in inter.functions.items():
                index.append([position[f] for f in inter.fields])
                fns.append(FUNCTIONS.index(name))
                alpha.append(value)
        return (
            torch.tensor(index, dtype=torch.long).reshape(-1, order),
            torch.tensor(fns, dtype=torch.long),
            torch.tensor(alpha, dtype=torch.float32),
        )

    def keep_mask(self, every_field: bool = False) -> torch.Tensor:
        """Kept slots ``[fields, tables, dim]``: a field keeps the tables of the functions its kept
        interactions use (table 0 when not function-wise) at its kept positions.

        ``every_field``: fields in no kept interaction keep table 0 too (an MLP reads them).
        """
        tables = len(FUNCTIONS) if self.function_wise else 1
        mask = torch.zeros(len(self.fields), tables, self.dim, dtype=torch.bool)
        used = torch.zeros(len(self.fields), tables, dtype=torch.bool)
        position = {name: i for i, name in enumerate(self.fields)}
        for inter in self.interactions:
            for name in inter.functions:
                table = FUNCTIONS.index(name) if self.function_wise else 0
                used[[position[f] for f in inter.fields], table] = True
        if every_field:
            used[~used.any(1), 0] = True
        for i, name in enumerate(self.fields):
            dims = torch.tensor(self.positions[name], dtype=torch.long)
            mask[i, :, dims] = used[i].unsqueeze(1)
        return mask

    def share_kept(self, order: int) -> float:
        """Kept interactions of ``order`` as a share of all C(n, order) possible ones."""
        total = torch.combinations(torch.arange(len(self.fields)), r=order).shape[0]
        return sum(i.order == order for i in self.interactions) / max(total, 1)

    def to_dict(self) -> dict:
        """JSON-able form (orders and widths written out for readers)."""
        return {
            "fields": list(self.fields),
            "dim": self.dim,
            "function_wise": self.function_wise,
            "widths": self.widths,
            "positions": {f: list(self.positions[f]) for f in self.fields},
            "interactions": [
                {"fields": list(i.fields), "order": i.order, "functions": dict(i.functions)} for i in self.interactions
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        """Inverse of :meth:`to_dict`."""
        try:
            inters = [KeptInteraction(list(i["fields"]), dict(i["functions"])) for i in data.get("interactions", [])]
            positions = {f: [int(k) for k in v] for f, v in data.get("positions", {}).items()}
            arch = cls(
                list(data["fields"]), inters, int(data["dim"]), bool(data.get("function_wise", False)), positions
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"architecture is malformed ({type(exc).__name__}: {exc})") from exc
        unknown = {f for i in inters for f in i.fields} - set(arch.fields)
        bad_fn = {fn for i in inters for fn in i.functions} - set(FUNCTIONS)
        bad_dim = {f for f, dims in arch.positions.items() if any(not 0 <= k < arch.dim for k in dims)}
        if unknown or bad_fn or bad_dim:
            raise ModelError(
                f"architecture names unknown fields {sorted(unknown)} or functions {sorted(bad_fn)}, "
                f"or positions outside 0..{arch.dim - 1} for {sorted(bad_dim)}"
            )
        return arch

    def save(self, path: Path) -> None:
        """Write as indented JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Architecture:
        """Read an ``architecture.json``; a missing or broken file gives a clear error."""
        if not path.exists():
            raise ModelError(f"{path} not found: run the stage that writes it first (see `dvc dag`)")
        return cls.from_dict(read_json(path, ModelError, "run its stage again"))
