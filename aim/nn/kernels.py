"""Fused CPU kernels for interaction rows (``csrc/rows.cpp``), compiled once per machine.

On the CPU the element-wise rows (:func:`aim.nn.interactions.row_values`) and the projected rows
(:func:`aim.nn.interactions.projected_rows`) are memory-bound in PyTorch ops: each row's factors
are gathered into fresh ``[r, d, B]`` copies, forward and backward. The kernels read the factors
in place, a block of 256 samples at a time (every source block stays in L2), with the batch split
over the threads: 2.5-3x faster than the tiled PyTorch path on 2 cores, and far steadier when
other work competes for memory bandwidth. Results equal the PyTorch path to float rounding
(tests/test_kernels.py).

The kernels are built with torch's extension loader (ninja + the system C++ compiler, about 30 s
the first time; the library is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``, keyed by the source, the CPU and the torch installation). They serve
float32 tensors on the CPU in eager mode; CUDA, other dtypes and ``torch.compile`` use the
PyTorch path. ``compute.cpu_kernels: off`` (or ``AIM_CPU_KERNELS=off``) turns them off; a
failed build logs why once and falls back to the PyTorch path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path
from types import ModuleType
from typing import Literal

import torch

from aim.nn.compiling import is_compiling

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "rows.cpp"
FLAGS = ["-O3", "-fopenmp-simd", "-march=native"]  # the library is per CPU (see _build_name)

Mode = Literal["auto", "off"]
_ENV_OFF = os.environ.get("AIM_CPU_KERNELS", "auto").lower() in ("off", "0", "false")  # wins over params
_mode: Mode = "off" if _ENV_OFF else "auto"
_loaded: ModuleType | None = None
_tried = False


def configure(mode: Mode) -> None:
    """``auto``: build (once) and use the kernels for float32 CPU rows; ``off``: PyTorch ops only."""
    global _mode
    if mode not in ("auto", "off"):
        raise ValueError(f"cpu_kernels must be auto or off, not {mode!r}")
    _mode = "off" if _ENV_OFF else mode


def _cpu_signature() -> str:
    """The CPU model and its instruction-set flags (the kernels are compiled for this CPU)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _build_name() -> str:
    """One library per source, flags, CPU and torch installation: two venvs (their torch headers
    differ in path) never rebuild each other's copy in the shared cache."""
    digest = hashlib.sha256()
    torch_install = str(Path(torch.__file__).resolve().parent)
    for part in (SOURCE.read_bytes(), " ".join(FLAGS), _cpu_signature(), torch.__version__, torch_install):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return f"aim_rows_{digest.hexdigest()[:16]}"


def _build() -> ModuleType | None:
    try:
        from torch.utils import cpp_extension

        name = _build_name()
        folder = Path(cpp_extension._get_build_directory(name, verbose=False))
        if not (folder / f"{name}.so").exists():
            log.info("building AIM's fused CPU kernels (once per machine, about 30 s) in %s", folder)
        return cpp_extension.load(name, [str(SOURCE)], extra_cflags=FLAGS, verbose=False)
    except Exception as error:  # no compiler, no ninja, a failed build: the PyTorch path still works
        log.warning(
            "AIM's fused CPU kernels are unavailable (%s: %s); using PyTorch ops, which are slower on CPU. "
            "Install a C++ compiler and ninja, or set compute.cpu_kernels: off to silence this.",
            type(error).__name__,
            str(error).strip().splitlines()[-1] if str(error).strip() else "",
        )
        return None


def cpu_kernels() -> ModuleType | None:
    """The compiled kernels, or None when they are off or could not be built (tried once)."""
    global _loaded, _tried
    if _mode == "off":
        return None
    if not _tried:
        _tried = True
        _loaded = _build()
    return _loaded


def serves(*tensors: torch.Tensor) -> bool:
    """Whether the kernels take these tensors: float32 on the CPU, eager mode, kernels built."""
    if is_compiling() or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    return cpu_kernels() is not None


class FusedProductRows(torch.autograd.Function):
    """:func:`aim.nn.interactions.row_values` by the fused kernel: ``Σ_d w_r ⊙ lead[which_r] ⊙ x[last_r]``."""

    @staticmethod
    def forward(ctx, lead: torch.Tensor, x: torch.Tensor, pairs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(lead, x, pairs, weights)
        ctx.same = lead is x  # order-2 rows read their leading field in place
        return cpu_kernels().product_rows(lead, x, pairs, weights.detach())

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        lead, x, pairs, weights = ctx.saved_tensors
        grad_lead, grad_x, grad_w = cpu_kernels().product_rows_backward(grad_out, lead, x, pairs, weights, ctx.same)
        return (None if ctx.same else grad_lead), grad_x, None, grad_w


class FusedProjectedRows(torch.autograd.Function):
    """:func:`aim.nn.interactions.projected_rows` by the fused kernel: ``Π_k (u_rk · x[slot_rk])``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slots: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, slots, projections)
        return cpu_kernels().projected_rows(x, slots, projections.detach())

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, slots, projections = ctx.saved_tensors
        grad_x, grad_u = cpu_kernels().projected_rows_backward(grad_out, x, slots, projections)
        return grad_x, None, grad_u
