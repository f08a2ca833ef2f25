"""The support check names every unsupported layer, with its position, in one message."""

import pytest
from torch import nn

from bnn2hw.errors import UnsupportedModelError
from bnn2hw.frontend import import_model
from bnn2hw.nn import BinaryAct, BinaryLinear, InputQuant


def problems_of(model, shape=(8,)):
    with pytest.raises(UnsupportedModelError) as info:
        import_model(model, shape)
    return info.value.problems, str(info.value)


def test_all_unsupported_layers_are_named_with_positions():
    model = nn.Sequential(InputQuant(4), nn.Linear(8, 8), nn.ReLU(), BinaryLinear(8, 8), nn.Dropout(),
                          BinaryAct(), BinaryLinear(8, 3))
    problems, message = problems_of(model)
    assert [p for p, _ in problems] == [1, 2, 4]
    assert "Linear" in message and "ReLU" in message and "Dropout" in message
    assert "BinaryLinear" in message       # the hint says what to use instead


def test_missing_input_quant():
    problems, message = problems_of(nn.Sequential(BinaryLinear(8, 3)))
    assert "InputQuant" in message


def test_network_must_end_in_scores():
    problems, message = problems_of(nn.Sequential(InputQuant(2), BinaryLinear(8, 4), nn.BatchNorm1d(4), BinaryAct()))
    assert "last layer" in message


def test_shape_mismatch_is_named():
    problems, message = problems_of(nn.Sequential(InputQuant(2), BinaryLinear(8, 4), BinaryAct(), BinaryLinear(5, 2)))
    assert problems[0][0] == 3 and "expects 5 inputs but receives 4" in message


def test_input_shape_must_match_first_layer():
    _, message = problems_of(nn.Sequential(InputQuant(2), BinaryLinear(8, 2)), shape=(9,))
    assert "expects 8 inputs but receives 9" in message


def test_batchnorm_without_running_stats():
    model = nn.Sequential(InputQuant(2), BinaryLinear(8, 4), nn.BatchNorm1d(4, track_running_stats=False),
                          BinaryAct(), BinaryLinear(4, 2))
    _, message = problems_of(model)
    assert "track_running_stats" in message


def test_flatten_before_first_layer_is_accepted():
    graph = import_model(nn.Sequential(InputQuant(3), nn.Flatten(), BinaryLinear(16, 2)).eval(), (4, 4))
    assert graph.input.shape == (4, 4) and graph.input.size == 16


def test_not_a_sequential():
    with pytest.raises(UnsupportedModelError, match="not an nn.Sequential"):
        import_model(BinaryLinear(3, 2), (3,))
