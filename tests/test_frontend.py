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


# -- multi-bit layers (issue 15) ---------------------------------------------------------------------------------

def test_multibit_network_must_end_in_scores_and_names_the_activation():
    from bnn2hw.nn import QuantAct
    model = nn.Sequential(InputQuant(2), BinaryLinear(8, 4, weight_bits=2), nn.BatchNorm1d(4), QuantAct(2, "signed"))
    problems, message = problems_of(model.eval())
    assert problems == [(3, problems[0][1])] and "the last layer is a QuantAct" in message


def test_padding_off_the_activation_grid_is_named_with_its_levels():
    from bnn2hw.nn import BinaryConv2d, QuantAct
    model = nn.Sequential(InputQuant(4), BinaryConv2d(1, 4, 3), nn.BatchNorm2d(4), QuantAct(2, "unsigned"),
                          BinaryConv2d(4, 4, 3, padding=1, pad_value=-1.0), nn.BatchNorm2d(4), BinaryAct(),
                          nn.Flatten(), BinaryLinear(36, 2)).eval()
    problems, message = problems_of(model, (1, 5, 5))
    assert [p for p, _ in problems] == [4]                       # nothing else: the walk stopped there
    assert "pads with -1, which is not a level of the activation before it (0, 1, 2, 3)" in message


def test_padding_with_a_level_of_the_grid_is_exact():
    """0 is a level of the unsigned grid: a zero-padded convolution after it compiles, and the golden
    model equals torch (float64) on every input."""
    import numpy as np

    from bnn2hw import golden
    from bnn2hw.nn import BinaryConv2d, QuantAct
    from bnn2hw.passes import fold_batchnorm
    from bnn2hw.reference import torch_forward
    model = nn.Sequential(InputQuant(4), BinaryConv2d(1, 4, 3), nn.BatchNorm2d(4), QuantAct(2, "unsigned", 0.5),
                          BinaryConv2d(4, 3, 3, padding=1, pad_value=0.0, weight_bits=2), nn.BatchNorm2d(3),
                          QuantAct(3, "signed", 0.25), nn.Flatten(), BinaryLinear(27, 2, weight_bits=4)).eval()
    x = np.random.default_rng(0).integers(0, 16, size=(64, 1, 5, 5))
    graph = fold_batchnorm(import_model(model, (1, 5, 5)))
    assert graph.nodes[1].window.pad_code == 0 and graph.nodes[1].input_kind == "codes"
    assert np.array_equal(golden.run(graph, x).classes, torch_forward(model, x).argmax(axis=1))
