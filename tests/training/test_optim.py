"""The one training schedule: learning rate, dropout switch and time budget."""

from __future__ import annotations

import math

import pytest
import torch

from training.config import TrainConfig
from training.optim import WARMUP_STEPS, Schedule, optimizer_step


def test_learning_rate_warms_up_then_follows_a_cosine_to_its_final_value():
    s = Schedule(TrainConfig(epochs=10, steps_per_epoch=100, lr=1e-3, lr_final=1e-5))
    assert s.lr(0) == pytest.approx(1e-3 / WARMUP_STEPS) and s.lr(WARMUP_STEPS - 1) == pytest.approx(1e-3)
    assert s.lr(500) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 0.5)))
    assert s.lr(1000) == pytest.approx(1e-5) and s.lr(5000) == pytest.approx(1e-5)
    lrs = [s.lr(k) for k in range(WARMUP_STEPS, 1001)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("fraction,epochs,first_off", [(0.5, 4, 2), (0.3, 10, 3), (0.35, 10, 4), (1 / 3, 3, 1)])
def test_dropout_is_off_from_the_first_epoch_at_its_fraction_of_training(fraction, epochs, first_off):
    s = Schedule(TrainConfig(epochs=epochs, steps_per_epoch=250, dropout_off_at=fraction))
    assert [s.dropout_off(e * 250) for e in range(epochs)] == [e >= first_off for e in range(epochs)]
    assert not any(Schedule(TrainConfig(epochs=epochs)).dropout_off(e * 250) for e in range(epochs))


def test_a_time_budget_drives_progress_and_a_resumed_run_keeps_its_clock():
    tc = TrainConfig(epochs=1000, steps_per_epoch=10, max_minutes=1.0, dropout_off_at=0.5)
    fresh, resumed = Schedule(tc), Schedule(tc, elapsed_s=45.0)
    assert not fresh.out_of_time(10) and not fresh.dropout_off(10)
    assert resumed.progress(10) == pytest.approx(0.75, abs=0.01) and resumed.dropout_off(10)
    assert Schedule(tc, elapsed_s=60.0).out_of_time(10)
    assert not Schedule(TrainConfig(epochs=2, steps_per_epoch=5), elapsed_s=1e6).out_of_time(5)


def test_a_diverged_loss_stops_with_one_sentence_and_leaves_the_weights_alone():
    model = torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(FloatingPointError, match="ordinal training diverged at step 7 .*lower \\[train\\] lr"):
        optimizer_step(opt, model, torch.tensor(float("nan")), "ordinal training", 7)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
