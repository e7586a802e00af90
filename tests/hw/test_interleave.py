"""The interleave contract without simulation: configuration checks, the wire order of the
streams (``TopInterface.group_order``), ``init`` values per sequence and the bounds per
sequence-step."""

import numpy as np
import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError, TopInterface
from lstm_fpga.testing import random_model


def _interface(B, lanes=16, *shape, **options):
    model = random_model(*(shape or (5, 16)), **options)
    return TopInterface(EnginePlan(model, HardwareConfig(lanes=lanes, interleave=B)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_interleave_must_be_a_positive_int(bad):
    with pytest.raises(HardwareConfigError, match="interleave must be a positive int"):
        HardwareConfig(interleave=bad)


def test_bidirectional_and_external_are_refused():
    model = random_model(3, 4, bidirectional=True)
    config = HardwareConfig(lanes=8, interleave=2, max_seq_len=4)
    with pytest.raises(HardwareConfigError, match="unidirectional models only"):
        EnginePlan(model, config)
    model = random_model(3, 4)
    config = HardwareConfig(lanes=4, interleave=2, weights="external")
    with pytest.raises(HardwareConfigError, match="--weights external"):
        EnginePlan(model, config)


@pytest.mark.parametrize("B", [1, 2, 3])
@pytest.mark.parametrize("per_step", [1, 3])
def test_group_order_interleaves_steps(B, per_step):
    interface = _interface(B, 5, 3, 4)
    lengths = [2] * B + [3] * B
    order = interface.group_order(lengths, per_step)
    starts = np.r_[0, np.cumsum(np.array(lengths) * per_step)[:-1]]
    expected = [
        starts[g + b] + t * per_step + e
        for g in range(0, len(lengths), B)
        for t in range(lengths[g])
        for b in range(B)
        for e in range(per_step)
    ]
    assert order.tolist() == expected
    assert sorted(order.tolist()) == list(range(sum(lengths) * per_step))


def test_groups_need_equal_lengths_and_whole_groups():
    interface = _interface(3, 5, 3, 4)
    with pytest.raises(ValueError, match="multiple of 3 sequences"):
        interface.check_groups([2, 2])
    with pytest.raises(ValueError, match="equal length"):
        interface.check_groups([2, 2, 3])


def test_init_values_per_sequence():
    B, L, H = 3, 2, 4
    interface = _interface(B, 5, 3, H, num_layers=L)
    h0 = np.arange(L * B * H).reshape(L, B, H)
    c0 = -h0
    values = interface.init_values(h0, c0)
    words = L * H
    for b in range(B):
        assert values[b * words : (b + 1) * words].tolist() == h0[:, b].reshape(-1).tolist()
        c = values[(B + b) * words : (B + b + 1) * words]
        assert c.tolist() == c0[:, b].reshape(-1).tolist()
    shared = interface.init_values(h0[:, 0], c0[:, 0])
    assert shared.size == 2 * B * words


@pytest.mark.parametrize(("B", "expected"), [(1, 36), (2, 21), (4, 21)])
def test_interleave_reaches_the_lane_bound_of_lstm_5_16_p64(B, expected):
    """LSTM(5,16) at P=64: the recurrence bound per sequence-step (lane bound 21)."""
    interface = _interface(B, 64)
    assert interface.step_bound == 21
    assert interface.recurrence_step_bound == expected
