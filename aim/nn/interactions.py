"""AIM's four interaction functions, generalised to order p, over a list of (interaction, function) rows.

Each row ``r`` names ``p`` fields (``index[r]``) and one function (``functions[r]``). One code path
serves every order and every function: gather the ``p`` embeddings of each row (from the row's
function-wise table), project them (rank-1 outer product rows only), multiply them element-wise
across the ``p`` fields, and take a kernel-weighted sum over the embedding dimension:

- inner:          Σ_d Π_k e_k
- vector kernel:  Σ_d w_r ⊙ Π_k e_k                  (w_r ∈ R^d per row)
- scalar kernel:  r_r · Σ_d Π_k e_k                   (one scalar per row)
- outer (rank-1): Π_k (u_{r,k}ᵀ e_k)                  (p projections per row)

No Python loop over rows: rows are index tensors, so search (all candidates × all functions) and
retrain (only the kept rows) differ only in how many rows there are.

Speed: embeddings are laid out ``[n, T, d, B]`` (batch innermost, each factor one contiguous block;
:func:`slot_major`), and every group of rows reads the ``[n, d, B]`` block of its one table.
Element-wise rows of order p are written as (leading p-1 fields, last field) with leading fields
shared by as many rows as possible (:func:`split_rows`: AIM's order-p candidates share the top-k
order-(p-1) interactions they grew from), so each leading product is formed once. Rows whose
kernel is uniform over the dimension (inner, scalar) are ``c_r · <leading product, last factor>``:
one batched Gram product per table gives every (leading product, last field) combination and the
rows pick theirs (:meth:`Interactions._gram_values`). Rows with a kernel per dimension (vector):
in eager mode :class:`TiledRows` evaluates :func:`row_values` over tiles of rows with a
hand-written backward that recomputes each tile, so the ``[R, d, B]`` products never exist whole;
under ``torch.compile`` the same :func:`row_values` runs on all rows at once. Projected rows
(:func:`projected_rows`) project first, in one batched matrix product over chunks of equal slots
(:func:`projection_plan`), and gather scalars. A complete set of inner-product pairs summed (FM's
term) uses the square-of-sum identity.

On the CPU (float32, eager mode) the fused C++ kernels of :mod:`aim.nn.kernels` take the
element-wise rows of every function (uniform kernels as ``c_r`` over every dimension) and the
projected rows: the same (leading product, last field) pairs and projections, read in place a
block of samples at a time instead of gathered. The PyTorch paths above serve CUDA, other dtypes,
``torch.compile`` and machines where the kernels cannot be built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aim.nn import kernels
from aim.nn.compiling import is_compiling

FUNCTIONS = ("inner", "vector_kernel", "scalar_kernel", "outer")
INNER, VECTOR, SCALAR, OUTER = range(len(FUNCTIONS))


class Interactions(nn.Module):
    """Values of ``R`` interaction rows of one order ``p``: ``[B, n, T, d]`` embeddings -> ``[B, R]``.

    ``function_wise``: row ``r`` reads table ``functions[r]`` (IFS); otherwise every row reads table 0.
    Rows are computed in vectorised groups, then put back in row order: rows whose kernel is
    uniform over the dimension (inner, scalar kernel) by one Gram product per table, per-dimension
    kernels (vector) by element-wise tiles, projected products (outer) by batched projections.
    """

    def __init__(self, index: torch.Tensor, functions: torch.Tensor, dim: int, function_wise: bool = False):
        super().__init__()
        if index.ndim != 2 or functions.shape != index.shape[:1] or index.shape[1] < 2:
            raise ValueError(f"index {tuple(index.shape)} must be [R, p] with p >= 2 and functions [R]")
        rows, order = index.shape
        functions = functions.long()
        index = index.long()
        tables = functions if function_wise else torch.zeros(rows, dtype=torch.long)
        self.register_buffer("index", index)
        self.register_buffer("functions", functions)
        self._derived("tables", tables)
        # uniform kernels (inner, scalar): Gram products per table; per-dimension (vector): tiles; outer: projections
        uniform = (functions == INNER) | (functions == SCALAR)
        self._derived("product_rows", torch.nonzero(functions == VECTOR).flatten())
        self._derived("outer_rows", torch.nonzero(functions == OUTER).flatten())
        # each function reads one table (its own, or table 0 of all): per group, one [n, d, B] block
        self._product_table = int(tables[self.product_rows[0]]) if len(self.product_rows) else 0
        self._outer_table = int(tables[self.outer_rows[0]]) if len(self.outer_rows) else 0
        prefixes, which, last = split_rows(index[self.product_rows])
        self._lead_in_place = order == 2  # a one-field leading product is the field's own block
        if self._lead_in_place:  # rows then name the field itself
            prefixes, which = prefixes[:0], prefixes[which, 0]
        self._derived("product_prefixes", prefixes)  # [Q, p - 1] leading fields shared by the rows
        self._derived("product_pairs", torch.stack([which, last], 1))  # row -> (prefix, last field)
        self._derived("outer_fields", index[self.outer_rows])
        chunk_slots, places, self._outer_width = projection_plan(self.outer_fields)
        self._derived("outer_chunk_slots", chunk_slots)  # where each projection goes (see projected_rows)
        self._derived("outer_places", places)
        # a row's coefficient: 0 -> 1 (inner), k + 1 -> scalar kernel k (kernels stored in row order)
        coefficient = torch.where(functions == SCALAR, (functions == SCALAR).long().cumsum(0), 0)
        self._gram_tables = [int(t) for t in torch.unique(tables[uniform])]
        self._pick_fields = int(index.max()) + 1 if rows else 0
        gram_rows = []
        for k, table in enumerate(self._gram_tables):  # at most one group per function table
            at = torch.nonzero(uniform & (tables == table)).flatten()
            prefixes, which, last = split_rows(index[at])
            self._derived(f"gram{k}_prefixes", prefixes)  # [Q, p - 1] leading fields shared by the rows
            self._derived(f"gram{k}_pick", which * self._pick_fields + last)  # row -> (prefix, last field)
            # the fused CPU kernel reads (prefix, last field) pairs; order-2 prefixes are the fields themselves
            lead = prefixes[which, 0] if self._lead_in_place else which
            self._derived(f"gram{k}_pairs", torch.stack([lead, last], 1))
            self._derived(f"gram{k}_coefficient", coefficient[at])
            self._derived(f"gram{k}_rows", at)
            gram_rows.append(at)
        self._derived("computed_rows", torch.cat([*gram_rows, self.product_rows, self.outer_rows]))
        self.vector_kernel = nn.Parameter(torch.ones(len(self.product_rows), dim))  # only rows that use them
        self.scalar_kernel = nn.Parameter(torch.ones(int((functions == SCALAR).sum())))
        self.projections = nn.Parameter(torch.randn(len(self.outer_rows), order, dim) / dim**0.5)
        distinct = len(torch.unique(index.sort(1).values, dim=0)) == rows if rows else False
        pairs = order == 2 and distinct and bool((index[:, 0] != index[:, 1]).all())
        self.all_inner_pairs = pairs and not function_wise and bool((functions == INNER).all())

    def _derived(self, name: str, value: torch.Tensor) -> None:
        """A buffer computed from ``index`` and ``functions``: rebuilt, not saved in checkpoints."""
        self.register_buffer(name, value, persistent=False)

    @property
    def order(self) -> int:
        return self.index.shape[1]

    def _gram_values(self, by_table: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Rows with a kernel uniform over the dimension (inner, scalar), ``[R_t, B]`` per table ``t``.

        A row's value is ``c_r · <Π of its leading p-1 factors, its last factor>``, so for every
        table one batched matrix product ``[B, Q, d] @ [B, d, n]`` gives the values of all
        (distinct leading product, last field) combinations at once, and the rows pick theirs:
        one BLAS call instead of gathering ``p·d·B`` numbers per row (4× faster for the 741
        order-2 pairs, forward and backward). Any order: the leading products are gathered and
        multiplied first (for pairs they are single factors). The combinations are formed in blocks
        of samples of at most ``GRAM_FLOATS`` numbers, so memory stays bounded for many prefixes.
        """
        parts = []
        for k, table in enumerate(self._gram_tables):
            x = by_table[table]  # [n, d, B]
            left = leading(x, getattr(self, f"gram{k}_prefixes"))  # Π of each prefix's fields, [Q, d, B]
            left = left.permute(2, 0, 1).contiguous()  # [B, Q, d] (bmm loops per sample on other strides)
            right = x[: self._pick_fields].permute(2, 0, 1).contiguous()  # [B, n, d]
            pick = getattr(self, f"gram{k}_pick")
            step = max(1, GRAM_FLOATS // (left.shape[1] * right.shape[1]))  # samples per [b, Q, n] block
            blocks = [
                torch.bmm(left[a : a + step], right[a : a + step].transpose(1, 2)).flatten(1).index_select(1, pick)
                for a in range(0, left.shape[0], step)
            ]
            values = (blocks[0] if len(blocks) == 1 else torch.cat(blocks)).t()
            coefficient = getattr(self, f"gram{k}_coefficient")
            if coefficient.any():
                scale = torch.cat([self.scalar_kernel.new_ones(1), self.scalar_kernel])[coefficient]
                values = values * scale.unsqueeze(1)
            parts.append(values)
        return parts

    def _uniform_values(self, by_table: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The rows of :meth:`_gram_values`, ``[R_t, B]`` per table, by the fused CPU kernel
        (:mod:`aim.nn.kernels`) when it serves the table, which needs no ``[B, Q·n]`` combinations
        and no pick: each row is ``Σ_d c_r ⊙ lead ⊙ last`` (1.2-1.5x faster than the Gram product
        for AIM's order-2 and order-3 rows on 2 cores). Falls back to :meth:`_gram_values`."""
        if not self._gram_tables or not kernels.serves(by_table[self._gram_tables[0]], self.scalar_kernel):
            return self._gram_values(by_table)
        parts = []
        for k, table in enumerate(self._gram_tables):
            x = by_table[table]
            lead = x if self._lead_in_place else leading(x, getattr(self, f"gram{k}_prefixes"))
            coefficient = getattr(self, f"gram{k}_coefficient")
            scale = torch.cat([self.scalar_kernel.new_ones(1), self.scalar_kernel])[coefficient]
            weights = scale.unsqueeze(1).expand(-1, x.shape[1]).contiguous()  # c_r over every dimension
            parts.append(kernels.FusedProductRows.apply(lead, x, getattr(self, f"gram{k}_pairs"), weights))
        return parts

    def parts(self, by_table: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The row values group by group, as computed: ``(values [R_k, B], rows [R_k])`` per group
        (``values`` may be a transposed view; ``rows`` are the rows' places in ``index``), from
        ``by_table = tables(emb)``, which every order of a model can share."""
        parts = [(part, getattr(self, f"gram{k}_rows")) for k, part in enumerate(self._uniform_values(by_table))]
        if len(self.product_rows):
            x = by_table[self._product_table]
            lead = x if self._lead_in_place else leading(x, self.product_prefixes)
            if kernels.serves(x, self.vector_kernel):
                values = kernels.FusedProductRows.apply
            else:
                values = row_values if is_compiling() else TiledRows.apply
            part = values(lead, x, self.product_pairs, self.vector_kernel)
            parts.append((part, self.product_rows))
        if len(self.outer_rows):
            x = by_table[self._outer_table]
            if kernels.serves(x, self.projections):
                part = kernels.FusedProjectedRows.apply(x, self.outer_fields, self.projections)
            else:
                plan = (self.outer_chunk_slots, self.outer_places, self._outer_width)
                part = projected_rows(x, self.outer_fields, self.projections, plan)
            parts.append((part, self.outer_rows))
        return parts

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        if not len(self.index):
            return emb.new_zeros(emb.shape[0], 0)
        values = torch.cat([part for part, _ in self.parts(tables(emb))])
        return RowsToBatch.apply(values, self.computed_rows)  # [B, R] for batch norm

    def total(self, emb: torch.Tensor) -> torch.Tensor:
        """``Σ_r`` of the row values, ``[B]``. Every pair of the ``n`` fields with the inner
        product on one table (FM) takes ``½ Σ_d ((Σ_i e_i)² - Σ_i e_i²)``: O(n·d), not O(n²·d)."""
        n = emb.shape[1]
        if self.all_inner_pairs and len(self.index) == n * (n - 1) // 2:
            e = emb[:, :, 0]
            return 0.5 * (e.sum(1).square() - e.square().sum(1)).sum(-1)
        return self(emb).sum(1)


GRAM_FLOATS = 1 << 26  # (leading product, last field) combinations held at once: 256 MiB of float32
TILE_FLOATS = 1 << 19  # gathered factors held at once (2 MiB of float32): a tile stays in cache


def tables(emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``[B, n, T, d]`` embeddings as ``T`` blocks ``[n, d, B]`` of the slot-major layout: what
    :meth:`Interactions.parts` reads (each group of rows reads the block of its one table)."""
    return slot_major(emb).unbind(1)


def slot_major(emb: torch.Tensor) -> torch.Tensor:
    """``[B, n, T, d]`` embeddings as ``[n, T, d, B]`` (batch innermost, every factor one block of
    ``d·B``): free when ``emb`` is already a view of that layout (narrow tables), else one 2-D
    transpose each way (:class:`SlotMajor`)."""
    layout = emb.permute(1, 2, 3, 0)
    if layout.is_contiguous():
        return layout
    return layout.contiguous() if is_compiling() else SlotMajor.apply(emb)


class SlotMajor(torch.autograd.Function):
    """``[B, n, T, d]`` -> contiguous ``[n, T, d, B]`` as a 2-D transpose ``[B, n·T·d]ᵀ``, and the
    gradient back the same way. Autograd's own backward of a permuted copy hands the embedding a
    4-D strided gradient, whose copy cost 5× a plain transpose on CPU."""

    @staticmethod
    def forward(ctx, emb: torch.Tensor) -> torch.Tensor:
        batch, n, tables, dim = emb.shape
        ctx.shape = emb.shape
        return transposed(emb.reshape(batch, -1)).view(n, tables, dim, batch)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return transposed(grad.reshape(-1, ctx.shape[0])).view(ctx.shape)


TRANSPOSE_FLOATS = 1 << 17  # numbers of the source per block in :func:`transposed` (512 KiB: in L2)


def transposed(x: torch.Tensor) -> torch.Tensor:
    """``x [m, k]`` as a contiguous ``[k, m]``, copied in blocks of source rows: on CPU each block
    stays in cache (a whole-matrix ``.t().contiguous()`` of the 25 MB embeddings of a search step
    was about 3× slower forward and 1.3× backward on 2 cores, cold cache)."""
    out = x.new_empty(x.shape[1], x.shape[0])
    step = max(32, TRANSPOSE_FLOATS // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):
        out[:, start : start + step].copy_(x[start : start + step].t())
    return out


def split_rows(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row ``[R, p]`` as (leading ``p - 1`` fields, last field): ``(prefixes [Q, p - 1], which [R],
    last [R])`` with ``index[r]`` = ``prefixes[which[r]]`` plus ``last[r]`` (as a set).

    A product does not care which field comes last, so each row drops the field whose removal leaves
    the leading fields most rows share (first such field on ties). AIM's order-p candidates are a
    top-k order-(p-1) interaction plus one field, so their prefixes are those k interactions, not the
    hundreds of distinct sorted leading pairs: the leading products are formed once per prefix.
    """
    rows, order = index.shape
    if rows == 0:
        return index[:, :-1], index.new_zeros(0), index.new_zeros(0)
    dropped = ~torch.eye(order, dtype=torch.bool, device=index.device)  # row k of columns: column k left out
    columns = torch.arange(order, device=index.device).expand(order, order)[dropped].view(order, order - 1)
    subsets, inverse, counts = torch.unique(
        index[:, columns].reshape(-1, order - 1), dim=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.view(rows, order)
    choice = counts[inverse].argmax(1, keepdim=True)  # the first most shared split of each row
    used, which = torch.unique(inverse.gather(1, choice).squeeze(1), return_inverse=True)
    return subsets[used], which, index.gather(1, choice).squeeze(1)


def leading(x: torch.Tensor, prefixes: torch.Tensor) -> torch.Tensor:
    """``Π_k x[prefixes[:, k]]``, ``[Q, d, B]`` from slot blocks ``x [n, d, B]``: one gather per factor,
    whose gradient scatters into the small ``[n, d, B]`` (one gather of every factor would stack a
    ``[Q, p - 1, d, B]`` gradient first)."""
    out = gather_rows(x, prefixes[:, 0])
    for factor in range(1, prefixes.shape[1]):
        out = out * gather_rows(x, prefixes[:, factor])
    return out


def product(factors: torch.Tensor) -> torch.Tensor:
    """``factors [r, p, ...]`` multiplied over ``p``, ``[r, ...]``: a view for ``p = 1``, else one
    multiply per factor over ``unbind`` (whose backward is one stack, where ``prod``'s or per-factor
    indexing's would fill and add a full-size zero gradient per factor)."""
    if factors.shape[1] == 1:
        return factors.squeeze(1)
    first, *rest = factors.unbind(1)
    out = first
    for factor in rest:
        out = out * factor
    return out


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[rows]`` for ``x [n, ...]`` as one 2-D gather (index_select on 3-D tensors is many times
    slower on CPU)."""
    return x.reshape(x.shape[0], -1).index_select(0, rows).view(len(rows), *x.shape[1:])


def row_values(lead: torch.Tensor, x: torch.Tensor, pairs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Values ``[R, B]`` of element-wise rows, ``Σ_d w_r ⊙ lead[which_r] ⊙ x[last_r]``, from leading
    products ``lead [Q, d, B]``, slot blocks ``x [n, d, B]``, ``pairs [R, 2]`` = (which, last) and
    kernels ``weights [R, d]`` (the one definition; see :class:`TiledRows`)."""
    prod = gather_rows(lead, pairs[:, 0]) * gather_rows(x, pairs[:, 1])
    return torch.bmm(weights.unsqueeze(1), prod).squeeze(1)  # the kernel sum as [1, d] @ [d, B]


def projection_plan(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Where each of the ``R·p`` (row, factor) projections of :func:`projected_rows` goes:
    ``(chunk_slots [C], places [R·p], width)``.

    Projections are grouped by the slot they read and each group is cut into chunks of ``width``
    (the mean group size), so one batched product ``[C, width, d] @ [C, d, B]`` computes them all
    with at most one partly filled chunk per slot; padding every group to the largest one wasted
    up to 4x for AIM's order-3 candidates, whose top fields sit in many rows.
    """
    flat = slots.flatten()
    if len(flat) == 0:
        return flat.new_zeros(0), flat.new_zeros(0), 1
    by_slot = torch.sort(flat, stable=True).indices
    used, counts = torch.unique_consecutive(flat[by_slot], return_counts=True)
    width = -(-len(flat) // len(used))
    # each projection's place in its slot's group, then its chunk and column
    rank = torch.arange(len(flat), device=flat.device) - (counts.cumsum(0) - counts).repeat_interleave(counts)
    chunks = -(-counts // width)
    chunk = (chunks.cumsum(0) - chunks).repeat_interleave(counts) + rank // width
    places = torch.empty_like(flat)
    places[by_slot] = chunk * width + rank % width
    return used.repeat_interleave(chunks), places, width


def projected_rows(
    x: torch.Tensor,
    slots: torch.Tensor,
    projections: torch.Tensor,
    plan: tuple[torch.Tensor, torch.Tensor, int] | None = None,
) -> torch.Tensor:
    """Values ``[R, B]`` of projected (outer) rows: ``Π_k (u_rk · x[slot_rk])``, projection first.

    The ``R·p`` projections, laid out by :func:`projection_plan` (``plan``, precomputed by
    :class:`Interactions`), come from one batched matrix product over chunks of equal slots; then
    only scalars ``[R, p, B]`` are gathered (``d`` times less than gathering the vectors). Plain
    autograd: the backward is two batched matrix products and a scatter of scalars.
    """
    rows, order = slots.shape
    chunk_slots, places, width = plan if plan is not None else projection_plan(slots)
    dim = x.shape[1]
    padded = projections.new_zeros(len(chunk_slots) * width, dim).index_copy(0, places, projections.reshape(-1, dim))
    projected = torch.bmm(padded.view(-1, width, dim), gather_rows(x, chunk_slots))  # [C, width, B]
    values = projected.view(len(chunk_slots) * width, -1).index_select(0, places)
    return product(values.view(rows, order, -1))


class RowsToBatch(torch.autograd.Function):
    """``[R, B]`` values computed in the order ``rows`` -> ``[B, R]`` in row order, in one pass.

    Transpose and permutation in one scatter; the backward is one gather (autograd's indexing
    would scatter-add in the backward, and a transpose would take a second pass).
    """

    @staticmethod
    def forward(ctx, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        out = values.new_empty(values.shape[1], values.shape[0])
        out.t().index_copy_(0, rows, values)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (rows,) = ctx.saved_tensors
        return grad_out.t().index_select(0, rows), None


class TiledRows(torch.autograd.Function):
    """:func:`row_values` evaluated tile by tile of rows, with a hand-written backward (eager mode).

    Only the inputs are kept for backward, which recomputes each tile's gathers: the ``[R, d, B]``
    products never exist whole, so memory stays flat in R (and every order gathers two factors, the
    leading product and the last field). The loop is over tiles of many rows (``TILE_FLOATS``
    gathered numbers each), each tile one batched tensor expression.
    """

    @staticmethod
    def _tiles(x: torch.Tensor, rows: int) -> list[slice]:
        step = max(1, TILE_FLOATS // max(1, 2 * x.shape[1] * x.shape[2]))
        return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]

    @staticmethod
    def forward(ctx, lead: torch.Tensor, x: torch.Tensor, pairs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(lead, x, pairs, weights)
        out = x.new_empty(pairs.shape[0], x.shape[2])
        for tile in TiledRows._tiles(x, len(pairs)):
            out[tile] = row_values(lead, x, pairs[tile], weights[tile])
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        lead, x, pairs, weights = ctx.saved_tensors
        grad_lead, grad_x, grad_w = torch.zeros_like(lead), torch.zeros_like(x), torch.zeros_like(weights)
        for tile in TiledRows._tiles(x, len(pairs)):
            which, last = pairs[tile].unbind(1)
            a, b = gather_rows(lead, which), gather_rows(x, last)  # [r, d, B] each, fresh copies
            g, w = grad_out[tile].unsqueeze(1), weights[tile].unsqueeze(-1)  # [r, 1, B], [r, d, 1]
            # in place on the gathered copies: no further [r, d, B] tensors allocated
            a.mul_(g)
            grad_w[tile] = torch.linalg.vecdot(a, b, dim=-1)  # Σ_b g a b (4x faster than a batched product)
            grad_x.view(len(x), -1).index_add_(0, last, a.mul_(w).flatten(1))
            grad_lead.view(len(lead), -1).index_add_(0, which, b.mul_(g).mul_(w).flatten(1))
        return grad_lead, grad_x, None, grad_w
