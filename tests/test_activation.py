"""Activation families: formulas against hand-computed values, stability at extreme inputs."""

import math

import pytest
import torch

from neuromod.activation import (
    POSITIVE_FLOOR,
    Fixed,
    Gain,
    Geadah,
    LearnAllParams,
    StaticLearned,
    geadah,
    inverse_softplus,
    scaled_softplus,
    stable_softplus,
)


def softplus_reference(z: float) -> float:
    return math.log1p(math.exp(z))


@pytest.mark.parametrize(
    "x, g, theta, alpha",
    [(0.0, 1.0, 1.0, 1.0), (2.5, 0.7, 1.0, 1.0), (-1.0, 2.0, -0.5, 3.0), (0.3, -1.5, 0.2, 0.25)],
)
def test_scaled_softplus_matches_hand_computed(x, g, theta, alpha):
    expected = g * softplus_reference(alpha * (x - theta)) / alpha
    got = scaled_softplus(torch.tensor(x), torch.tensor(g), torch.tensor(theta), torch.tensor(alpha))
    assert got.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_scaled_softplus_known_value():
    # g=2, theta=1, alpha=1 at x=1: 2 * log(2)
    got = scaled_softplus(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(1.0), torch.tensor(1.0))
    assert got.item() == pytest.approx(2 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("x, n, s", [(0.0, 1.0, 0.5), (1.2, 2.0, 0.1), (-0.7, 0.5, 0.9)])
def test_geadah_matches_hand_computed(x, n, s):
    expected = (1 - s) * softplus_reference(n * x) / n + s / (1 + math.exp(-n * x))
    got = geadah(torch.tensor(x), torch.tensor(n), torch.tensor(s))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_softplus_is_stable_at_extremes():
    z = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
    out = stable_softplus(z)
    assert torch.isfinite(out).all()
    assert out[0].item() == 0.0
    assert out[-1].item() == pytest.approx(1e4)
    assert out[2].item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("family_cls", [Gain, LearnAllParams, Geadah, Fixed, StaticLearned])
def test_finite_values_and_gradients_at_extreme_inputs(family_cls):
    family = family_cls()
    x = torch.tensor([-1e4, -1.0, 0.0, 1.0, 1e4], requires_grad=True)
    raw = family.initial_raw.expand(5, -1).clone().requires_grad_(True)
    y = family.gamma(x, family.to_params(raw))
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(raw.grad).all()


def test_alpha_near_floor_stays_finite():
    x = torch.tensor([-1e4, 0.0, 1e4], requires_grad=True)
    alpha = torch.tensor([0.0, 1e-9, POSITIVE_FLOOR / 2], requires_grad=True)
    y = scaled_softplus(x, torch.ones(3), torch.ones(3), alpha)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all() and torch.isfinite(alpha.grad).all()
    # at the floor the function is g * softplus(floor (x - theta)) / floor, near (x - theta)/2 + log 2 / floor
    assert y[1].item() == pytest.approx(math.log(2) / POSITIVE_FLOOR, rel=1e-3)


def test_positive_transform_keeps_alpha_above_floor():
    family = LearnAllParams()
    raw = torch.tensor([[0.0, 0.0, -1e4], [0.0, 0.0, 1e4]])
    params = family.to_params(raw)
    assert (params[:, 2] >= POSITIVE_FLOOR).all()
    assert torch.isfinite(params).all()


def test_initial_params_round_trip():
    families = (Gain(), LearnAllParams(init={"alpha": 2.5, "theta": -0.3}), Geadah(init={"n": 0.3, "s": 0.2}))
    for family in families:
        values = family.initial_params()
        expected = torch.tensor([family.initial_values[name] for name in family.param_names])
        assert torch.allclose(values, expected, atol=1e-6)


def test_gain_family_only_changes_g():
    family = Gain()
    params = family.to_params(torch.tensor([[3.0, 7.0, -9.0]]))
    assert params[0, 0].item() == pytest.approx(3.0)
    assert params[0, 1].item() == pytest.approx(1.0)  # theta fixed
    assert params[0, 2].item() == pytest.approx(1.0, rel=1e-5)  # alpha fixed


def test_fixed_is_constant_one():
    family = Fixed()
    params = family.to_params(torch.randn(4, 3))
    assert torch.allclose(params, torch.ones(4, 3), atol=1e-5)
    assert not family.modulated


def test_bad_init_and_lag_are_refused():
    with pytest.raises(ValueError, match="af.init"):
        Gain(init={"beta": 1.0})
    with pytest.raises(ValueError, match="floor"):
        LearnAllParams(init={"alpha": 0.0})
    with pytest.raises(ValueError, match="between 0 and 1"):
        Geadah(init={"s": 1.0})
    with pytest.raises(ValueError, match="af.lag"):
        Gain(lag=-1)


def test_inverse_softplus():
    for y in (1e-3, 0.5, 1.0, 7.0):
        assert stable_softplus(torch.tensor(inverse_softplus(y))).item() == pytest.approx(y, rel=1e-5)


def test_stable_softplus_has_softplus_gradient_everywhere():
    """Including exactly at 0, where a max(z, 0) written with clamp would give 1 instead of 1/2."""
    z = torch.tensor([-30.0, -2.0, 0.0, 2.0, 30.0], dtype=torch.double, requires_grad=True)
    stable_softplus(z).sum().backward()
    assert torch.allclose(z.grad, torch.sigmoid(z.detach()))
    assert z.grad[2].item() == 0.5
