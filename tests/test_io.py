"""The model file: round trip, and one clear refusal for everything that is not a bnn2hw model."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

import bnn2hw
from bnn2hw.errors import ModelFileError
from bnn2hw.io import UnsupportedModule
from bnn2hw.nn import BinaryAct, BinaryLinear, InputQuant
from bnn2hw.reference import torch_forward
from bnn2hw.testing import build_random_model, random_inputs, random_spec


def test_round_trip_preserves_outputs_and_metadata(tmp_path):
    spec = random_spec(3)
    model = build_random_model(spec)
    path = tmp_path / "m.pt"
    bnn2hw.save(model, path, (spec.widths[0],), metadata={"note": "hi", "acc": 0.5})
    loaded = bnn2hw.load(path)
    x = random_inputs(spec, n=16)
    assert np.array_equal(torch_forward(model, x), torch_forward(loaded, x))
    assert loaded.input_shape == (spec.widths[0],)
    assert loaded.metadata == {"note": "hi", "acc": 0.5}
    assert not loaded.training


def test_file_loads_with_weights_only(tmp_path):
    model = nn.Sequential(InputQuant(4), BinaryLinear(5, 3))
    bnn2hw.save(model, tmp_path / "m.pt", (5,))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == "bnn2hw-model" and payload["version"] == 1


def test_unsupported_layers_are_saved_by_name(tmp_path):
    model = nn.Sequential(InputQuant(4), nn.Linear(5, 3), nn.ReLU(), BinaryLinear(3, 2))
    bnn2hw.save(model, tmp_path / "m.pt", (5,))
    loaded = bnn2hw.load(tmp_path / "m.pt")
    assert isinstance(loaded[1], UnsupportedModule) and loaded[1].class_name.endswith("Linear")
    assert isinstance(loaded[2], UnsupportedModule) and loaded[2].class_name.endswith("ReLU")


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        bnn2hw.load(tmp_path / "nope.pt")


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "m.pt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="not a bnn2hw model file"):
        bnn2hw.load(path)


def test_plain_state_dict_is_not_a_model(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ModelFileError, match="not a bnn2hw model file"):
        bnn2hw.load(path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "bnn2hw-model", "payload": _Evil(str(marker))}, f)
    with pytest.raises(ModelFileError, match="never runs code"):
        bnn2hw.load(path)
    assert not marker.exists()


def test_whole_module_pickle_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(InputQuant(4), BinaryLinear(5, 3)), path)
    with pytest.raises(ModelFileError, match="never runs code"):
        bnn2hw.load(path)


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"format": "bnn2hw-model", "version": 99, "layers": [], "input_shape": [1]}, path)
    with pytest.raises(ModelFileError, match="version 99"):
        bnn2hw.load(path)


def test_save_is_atomic(tmp_path):
    path = tmp_path / "m.pt"
    bnn2hw.save(nn.Sequential(InputQuant(4), BinaryLinear(5, 3)), path, (5,))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        bnn2hw.save(nn.Sequential(InputQuant(4), BinaryLinear(5, 3)), path, (5,), metadata={"bad": object()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_sign_of_zero_is_plus_one():
    layer = BinaryLinear(3, 1).eval()
    with torch.no_grad():
        layer.weight.zero_()
    assert torch.equal(layer(torch.ones(1, 3)), torch.full((1, 1), 3.0))
    assert torch.equal(BinaryAct().eval()(torch.zeros(4)), torch.ones(4))


def test_clipped_ste_gradient_window():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 1.0, 1.5], requires_grad=True)
    BinaryAct().train()(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))


def test_input_quant_maps_onto_minus_one_plus_one():
    q = InputQuant(4)
    assert torch.equal(q(torch.tensor([0.0, 15.0])), torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="1 to 8"):
        InputQuant(9)


def test_metadata_subclasses_become_plain_data(tmp_path):
    import torch as _torch
    bnn2hw.save(nn.Sequential(InputQuant(4), BinaryLinear(5, 3)), tmp_path / "m.pt", (5,),
                metadata={"torch": _torch.__version__, "n": np.int64(3), "acc": np.float32(0.5)})
    meta = bnn2hw.load(tmp_path / "m.pt").metadata
    assert meta == {"torch": str(_torch.__version__), "n": 3, "acc": 0.5}
    assert type(meta["torch"]) is str


def test_multibit_layers_round_trip(tmp_path):
    """QuantAct, weight_bits and the channel scale are saved as plain data and rebuilt exactly."""
    from bnn2hw.nn import QuantAct
    torch.manual_seed(0)
    model = nn.Sequential(InputQuant(4), BinaryLinear(8, 6, weight_bits=2, scale=True), nn.BatchNorm1d(6),
                          QuantAct(3, "signed", 0.25, narrow=True), BinaryLinear(6, 3, weight_bits=4),
                          nn.BatchNorm1d(3), QuantAct(2, "unsigned", 0.5), BinaryLinear(3, 2)).eval()
    with torch.no_grad():
        model[1].weight_scale.uniform_(0.5, 2.0)
    bnn2hw.save(model, tmp_path / "m.pt", input_shape=(8,))
    loaded = bnn2hw.load(tmp_path / "m.pt")
    assert [repr(m) for m in loaded] == [repr(m) for m in model]
    x = torch.randint(0, 16, (32, 8)).float()
    assert torch.equal(loaded(x), model(x))
