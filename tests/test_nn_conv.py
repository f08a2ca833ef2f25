"""BinaryConv2d (issue 4 groundwork): explicit padding semantics against torch's own convolution, the
model file round trip with BatchNorm2d and MaxPool2d, training through the Binarizer, and the compiler's
message until convolutions compile."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import bnn2hw
from bnn2hw.io import BinaryNet
from bnn2hw.nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, hard_sign
from bnn2hw.train import BinarizationConfig, Binarizer, TrainConfig, load_training_data, train


def conv_net(seed=0):
    torch.manual_seed(seed)
    net = BinaryNet(InputQuant(5), BinaryConv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), BinaryAct(),
                    BinaryConv2d(6, 8, (3, 2), stride=2, padding=(1, 0), pad_value=1), nn.MaxPool2d(2),
                    nn.BatchNorm2d(8), BinaryAct(), nn.Flatten(), BinaryLinear(8 * 2 * 2, 10),
                    input_shape=(1, 8, 8))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-2, 2)
                m.running_var.uniform_(0.5, 3)
                m.weight.uniform_(-1, 1)
    return net.eval()


@pytest.mark.parametrize("pad_value", [-1.0, 1.0, 0.0])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), ((2, 3), 2, (0, 2)), (1, 1, 0), ((5, 4), 1, 3)])
def test_forward_is_a_convolution_of_signs_over_an_explicitly_padded_input(pad_value, kernel, stride, padding):
    torch.manual_seed(1)
    m = BinaryConv2d(3, 5, kernel, stride=stride, padding=padding, pad_value=pad_value).eval().double()
    with torch.no_grad():
        m.weight[0, 0, 0, 0] = 0.0  # sign(0) = +1
    x = hard_sign(torch.randn(2, 3, 7, 9, dtype=torch.float64))
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    ref = nn.Conv2d(3, 5, kernel, stride=stride, padding=0, bias=False).double()
    with torch.no_grad():
        ref.weight.copy_(torch.where(m.weight >= 0, 1.0, -1.0))
        out = m(x)
        expected = ref(F.pad(x, (pw, pw, ph, ph), value=pad_value))
    assert torch.equal(out, expected)
    if pad_value == 0.0:  # torch's own zero padding
        zero = nn.Conv2d(3, 5, kernel, stride=stride, padding=(ph, pw), bias=False).double()
        zero.weight = ref.weight
        with torch.no_grad():
            assert torch.equal(out, zero(x))


@pytest.mark.parametrize("kwargs, words", [
    (dict(kernel_size=0), "kernel_size"), (dict(kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(kernel_size=3, stride=0), "stride"), (dict(kernel_size=3, padding=-1), "padding"),
    (dict(kernel_size=3, pad_value=0.5), "pad_value"),
])
def test_bad_parameters_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words):
        BinaryConv2d(2, 3, **kwargs)


def test_conv_model_file_round_trip_keeps_every_output(tmp_path):
    net = conv_net()
    bnn2hw.save(net, tmp_path / "c.pt", input_shape=(1, 8, 8))
    back = bnn2hw.load(tmp_path / "c.pt")
    assert [type(m) for m in back] == [type(m) for m in net]
    conv = back[4]
    assert (conv.kernel_size, conv.stride, conv.padding, conv.pad_value) == ((3, 2), (2, 2), (1, 0), 1.0)
    x = torch.randint(0, 17, (5, 1, 8, 8)).double()
    with torch.no_grad():
        assert torch.equal(back.double()(x), net.double()(x))


def test_binarizer_masks_convolutions_like_dense_layers():
    net = conv_net().train()
    binarizer = Binarizer(net, BinarizationConfig(granularity="out_channel", start=0.0, end=1.0), 30,
                          torch.Generator().manual_seed(0))
    assert [type(u.layer) for u in binarizer.units] == [BinaryConv2d, BinaryConv2d, BinaryLinear]
    x = torch.randint(0, 17, (4, 1, 8, 8)).float()
    binarizer.update(5)
    net(x)
    unit = binarizer.units[1]
    assert unit.act_mask.shape == (6, 8, 8)  # C×H×W of the activation feeding the second convolution
    filters = unit.weight_mask.reshape(8, -1)
    assert torch.equal(filters.all(1), filters.any(1))  # whole filters freeze together
    binarizer.update(30)
    with binarizer.train_state(), torch.no_grad():
        trained = net(x)
    net.eval()
    with torch.no_grad():
        assert torch.equal(trained, net(x))  # every mask hard = the deploy network


def test_training_a_convolutional_model():
    data = load_training_data("digits")
    result = train(data, TrainConfig(epochs=1, batch_size=128), model=conv_net())
    assert 0.0 <= result.test_accuracy <= 1.0 and len(result.history) == 1
    assert result.history[0]["frozen"][0]["weights"] == 1.0


def test_the_compiler_imports_convolutional_models():
    from bnn2hw.frontend import import_model
    graph = import_model(conv_net(), (1, 8, 8))
    assert graph.has_convolutions and graph.nodes[0].window.in_shape == (8, 8, 1)
