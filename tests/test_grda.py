"""GRDA: hand-computed steps, exact zeros for useless gates, the t**mu threshold, checkpoints, argument checks."""

from __future__ import annotations

import io

import pytest
import torch
from torch.testing import assert_close

from aim.search.grda import GRDA


def _step_with(opt: GRDA, param: torch.Tensor, grad: list[float]) -> None:
    param.grad = torch.tensor(grad, dtype=param.dtype)
    opt.step()


def test_three_hand_computed_steps():
    lr, c, mu = 0.5, 0.1, 0.6
    w = torch.nn.Parameter(torch.tensor([0.6, -0.6, 0.05], dtype=torch.float64))
    opt = GRDA([w], lr=lr, c=c, mu=mu)
    k = c * lr ** (0.5 + mu)  # threshold scale: l_t = k * t**mu

    # step 1, grad [0.2, -0.4, 0.0]: v1 = w0 - lr * g1
    v = [0.6 - 0.5 * 0.2, -0.6 - 0.5 * -0.4, 0.05 - 0.5 * 0.0]  # [0.5, -0.4, 0.05]
    thr = k * 1.0**mu
    _step_with(opt, w, [0.2, -0.4, 0.0])
    expected = [0.5 - thr, -(0.4 - thr), 0.05 - thr]  # 0.05 > thr = 0.0467, so still non-zero
    assert_close(opt.state[w]["accumulator"], torch.tensor(v, dtype=torch.float64))
    assert opt.state[w]["threshold"] == pytest.approx(thr)
    assert_close(w.detach(), torch.tensor(expected, dtype=torch.float64))
    assert w[2].item() > 0.0

    # step 2, grad [-0.1, 0.3, 0.1]: v2 = [0.55, -0.55, 0.0] -> third coordinate becomes exactly zero
    v = [v[0] - 0.5 * -0.1, v[1] - 0.5 * 0.3, v[2] - 0.5 * 0.1]
    thr = k * 2.0**mu
    _step_with(opt, w, [-0.1, 0.3, 0.1])
    expected = [0.55 - thr, -(0.55 - thr), 0.0]
    assert_close(opt.state[w]["accumulator"], torch.tensor(v, dtype=torch.float64))
    assert opt.state[w]["threshold"] == pytest.approx(thr)
    assert_close(w.detach(), torch.tensor(expected, dtype=torch.float64))
    assert w[2].item() == 0.0

    # step 3, grad [0.4, 0.2, -0.2]: v3 = [0.35, -0.65, 0.1]; the zeroed coordinate comes back (dual averaging)
    v = [v[0] - 0.5 * 0.4, v[1] - 0.5 * 0.2, v[2] - 0.5 * -0.2]
    thr = k * 3.0**mu
    _step_with(opt, w, [0.4, 0.2, -0.2])
    expected = [0.35 - thr, -(0.65 - thr), 0.1 - thr]
    assert_close(opt.state[w]["accumulator"], torch.tensor(v, dtype=torch.float64))
    assert opt.state[w]["threshold"] == pytest.approx(thr)
    assert_close(w.detach(), torch.tensor(expected, dtype=torch.float64))
    assert opt.state[w]["step"] == 3


def test_gate_on_irrelevant_feature_becomes_exactly_zero():
    torch.manual_seed(0)
    gate = torch.nn.Parameter(torch.ones(2))
    bias = torch.nn.Parameter(torch.zeros(1))  # trained by Adam on the same batch, as in the search stage
    grda, adam = GRDA([gate], lr=0.1, c=0.5, mu=0.8), torch.optim.Adam([bias], lr=0.01)
    for _ in range(200):
        x = torch.randn(64, 2)  # x[:, 0] drives the label, x[:, 1] is independent noise
        y = torch.bernoulli(torch.sigmoid(2.0 * x[:, 0]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits((x * gate).sum(1) + bias, y)
        grda.zero_grad()
        adam.zero_grad()
        loss.backward()
        grda.step()
        adam.step()
    assert gate[1].item() == 0.0
    assert gate[0].item() > 0.5


def test_threshold_grows_like_t_to_the_mu_and_zeroes_small_weights_on_time():
    lr, c, mu = 0.1, 0.2, 0.8
    k = c * lr ** (0.5 + mu)
    small = k * 4.5**mu  # above l_4, below l_5
    w = torch.nn.Parameter(torch.tensor([small, -small, 1.0]))
    opt = GRDA([w], lr=lr, c=c, mu=mu)
    for t in range(1, 9):
        w.grad = torch.zeros_like(w)
        opt.step()
        thr = k * t**mu
        assert opt.state[w]["threshold"] == pytest.approx(thr, rel=1e-12)
        if t <= 4:
            assert abs(w[0].item()) > 0.0 and abs(w[1].item()) > 0.0
            assert_close(w.detach(), torch.tensor([small - thr, -(small - thr), 1.0 - thr]))
        else:
            assert w[0].item() == 0.0 and w[1].item() == 0.0
        assert w[2].item() == pytest.approx(1.0 - thr, rel=1e-5)


def test_threshold_is_incremental_when_lr_changes_and_skips_params_without_grad():
    c, mu = 0.3, 0.5
    w, idle = torch.nn.Parameter(torch.tensor([2.0])), torch.nn.Parameter(torch.tensor([2.0]))
    opt = GRDA([w, idle], lr=0.1, c=c, mu=mu)
    w.grad = torch.zeros(1)
    opt.step()
    opt.param_groups[0]["lr"] = 0.4
    opt.step()
    expected = c * 0.1 ** (0.5 + mu) * 1.0 + c * 0.4 ** (0.5 + mu) * (2.0**mu - 1.0)
    assert opt.state[w]["threshold"] == pytest.approx(expected)
    assert w.item() == pytest.approx(2.0 - expected)
    assert idle not in opt.state and idle.item() == 2.0


def test_state_dict_round_trip():
    torch.manual_seed(1)
    grads = [torch.randn(5) for _ in range(3)]
    w = torch.nn.Parameter(torch.randn(5))
    opt = GRDA([w], lr=0.2, c=0.3, mu=0.7)
    for g in grads[:2]:
        w.grad = g.clone()
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)

    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = GRDA([w2])  # default hyper-parameters: the loaded param_groups must replace them
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    fresh_w = torch.nn.Parameter(w.detach().clone())
    fresh = GRDA([fresh_w], lr=0.2, c=0.3, mu=0.7)
    for param, optimizer in ((w, opt), (w2, opt2), (fresh_w, fresh)):
        param.grad = grads[2].clone()
        optimizer.step()

    assert opt2.param_groups[0]["lr"] == 0.2 and opt2.state[w2]["step"] == 3
    assert_close(w2.detach(), w.detach(), rtol=0, atol=0)
    assert_close(opt2.state[w2]["accumulator"], opt.state[w]["accumulator"], rtol=0, atol=0)
    assert not torch.equal(fresh_w.detach(), w.detach())  # without the loaded state the step differs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"c": -1e-3}, "c must be"),
        ({"mu": 0.0}, "mu"),
        ({"mu": 1.0}, "mu"),
        ({"mu": -0.5}, "mu"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRDA([torch.nn.Parameter(torch.zeros(1))], **kwargs)
