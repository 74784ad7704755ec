"""The searched architecture as a plain JSON-able object: ``artifacts/architecture.json``.

Every kept interaction is recorded in field names with its order, its kept functions and their α;
every field with its kept embedding width. Stages hand this object to each other instead of
pasting masks by hand, and models are rebuilt from it with :meth:`Architecture.rows`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

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
    """Kept interactions (any order) and kept embedding width per field."""

    fields: list[str]
    interactions: list[KeptInteraction] = field(default_factory=list)
    widths: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_gates(
        cls,
        fields: list[str],
        index: torch.Tensor,
        functions: torch.Tensor,
        alpha: torch.Tensor,
        widths: dict[str, int] | None = None,
    ) -> Architecture:
        """Keep rows whose gate is non-zero, grouped by interaction (rows of one order)."""
        kept: dict[tuple[int, ...], dict[str, float]] = {}
        for row in torch.nonzero(alpha != 0).flatten().tolist():
            key = tuple(index[row].tolist())
            kept.setdefault(key, {})[FUNCTIONS[int(functions[row])]] = float(alpha[row])
        interactions = [KeptInteraction([fields[i] for i in key], fns) for key, fns in sorted(kept.items())]
        return cls(list(fields), interactions, dict(widths or {}))

    def merge(self, other: Architecture) -> Architecture:
        """This architecture plus ``other``'s interactions (e.g. a higher order); widths from ``other`` win."""
        return Architecture(self.fields, self.interactions + other.interactions, {**self.widths, **other.widths})

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

    def save(self, path: Path) -> None:
        """Write as indented JSON (order written out for readers)."""
        data = asdict(self)
        for inter in data["interactions"]:
            inter["order"] = len(inter["fields"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Architecture:
        """Read an ``architecture.json``."""
        data = json.loads(path.read_text())
        inters = [KeptInteraction(i["fields"], i["functions"]) for i in data.get("interactions", [])]
        return cls(data["fields"], inters, data.get("widths", {}))
