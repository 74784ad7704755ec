"""``Σ_r α_r · BN(v_r)`` without the ``[B, R]`` detour: the gated, batch-normalised sum of rows.

In the search (and wherever the gated rows are only summed into the logit, no MLP on top of them),
``[B, R]`` row values would otherwise be put in row order, batch-normalised, multiplied by α and
summed: several passes over the largest tensor of the step, forward and backward. Here the values
stay in the layout and order their group computed them in (``[R_k, B]`` or ``[B, R_k]``, a part
per group, see :meth:`aim.nn.interactions.Interactions.parts`): :class:`GatedNormSum` normalises a
part in its own layout (channels = rows), sums it with one matrix-vector product, and its
backward is batch norm's gradient in two passes. The result equals
``BatchNorm1d(affine=False)`` (batch statistics while training, running statistics in eval mode,
the same running-statistics update) followed by ``· α`` and ``.sum(1)``; the tests check values,
gradients and running statistics against that reference.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedNormSum(torch.autograd.Function):
    """``y_b = Σ_r α_r x̂_rb``, ``x̂ = (v - μ) / sqrt(σ² + eps)`` with batch statistics; ``v`` is a
    contiguous ``[R, B]`` (``batch_major=False``) or ``[B, R]``. Returns ``y``, ``μ`` and the biased
    ``σ²`` (the last two for the running statistics, not differentiable).

    ``x̂`` comes from the batch-norm kernel for ``[B, R]`` and from centred row reductions for
    ``[R, B]`` (both two-pass statistics); the sum is one matrix-vector product, and so is the
    backward's ``Σ_b dy_b x̂_rb``.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, alpha: torch.Tensor, eps: float, batch_major: bool):
        if batch_major:  # rows are batch norm's channels
            normed, mean, invstd = torch.native_batch_norm(v, None, None, None, None, True, 0.0, eps)
            y = normed @ alpha
        else:  # [R, B]: contiguous reductions along each row beat batch norm's [1, R, B] path
            mean = v.mean(1)
            normed = v - mean.unsqueeze(1)
            invstd = (torch.linalg.vecdot(normed, normed, dim=1) / v.shape[1] + eps).rsqrt()
            normed.mul_(invstd.unsqueeze(1))
            y = alpha @ normed
        ctx.save_for_backward(normed, alpha, invstd)
        ctx.batch_major = batch_major
        var = invstd.pow(-2).sub_(eps)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, dy: torch.Tensor, *_):
        normed, alpha, invstd = ctx.saved_tensors
        scale = alpha * invstd
        centred_dy = dy - dy.mean()
        # batch norm's gradient: dv_rb = s_r (dy_b - mean(dy)) - s_r x̂_rb g_r / B, g_r = Σ_b dy_b x̂_rb
        if ctx.batch_major:
            g = dy @ normed
            dv = (normed * (scale * g / -len(dy))).addr_(centred_dy, scale)
        else:
            g = normed @ dy
            dv = (normed * (scale * g / -len(dy)).unsqueeze(1)).addr_(scale, centred_dy)
        return dv, g, None, None


def gated_norm_sum(parts: list[tuple[torch.Tensor, torch.Tensor]], alpha: torch.Tensor, norm: nn.BatchNorm1d):
    """``Σ_r α_r · norm(v)_r`` per sample, ``[B]``, from parts ``(values [R_k, B], rows [R_k])``
    that together hold every row once (``rows`` are their places in ``alpha`` and ``norm``).

    ``norm`` is a ``BatchNorm1d(R, affine=False)``: batch statistics and its running-statistics
    update while training, its running statistics in eval mode.
    """
    batch = parts[0][0].shape[1]
    y = parts[0][0].new_zeros(batch)
    use_batch = norm.training or norm.running_mean is None
    momentum = norm.momentum
    if norm.training and norm.track_running_stats:
        norm.num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average, as BatchNorm1d
            momentum = 1.0 / float(norm.num_batches_tracked)
    for values, rows in parts:
        a, values = alpha.index_select(0, rows), values.float()
        if use_batch:
            batch_major = values.stride(0) == 1 and values.stride(1) != 1  # a transposed [B, R]
            v = values.t().contiguous() if batch_major else values.contiguous()
            part, mean, var = GatedNormSum.apply(v, a, norm.eps, batch_major)
            y = y + part
            if norm.training and norm.track_running_stats:
                with torch.no_grad():
                    unbiased = var * (batch / max(batch - 1, 1))
                    norm.running_mean.index_copy_(0, rows, norm.running_mean[rows].lerp_(mean, momentum))
                    norm.running_var.index_copy_(0, rows, norm.running_var[rows].lerp_(unbiased, momentum))
        else:
            scale = a * (norm.running_var[rows] + norm.eps).rsqrt()
            y = y + scale @ (values - norm.running_mean[rows].unsqueeze(1))
    return y
