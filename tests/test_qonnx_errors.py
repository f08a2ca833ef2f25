"""Bad QONNX input to `bnn2hw compile`: each case is one `error:` sentence, a non-zero exit code, no
traceback and nothing written (issue 16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from bnn2hw.cli import cli
from bnn2hw.testing_qonnx import random_qonnx_graph

ROOT = Path(__file__).resolve().parents[1]
TFC = ROOT / "models" / "qonnx" / "TFC_1W1A.onnx"


def compile_error(tmp_path, model: Path, *extra: str) -> str:
    out_dir = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compile", str(model), "--out", str(out_dir), *extra])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert not out_dir.exists()
    return " ".join(errors[0].split())          # rich may wrap a long sentence


def plain_onnx(path: Path) -> Path:
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2))], initializer=[w])
    onnx.save(helper.make_model(graph), path)
    return path


def test_truncated_file(tmp_path):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(TFC.read_bytes()[:5000])
    assert "is not a readable ONNX file" in compile_error(tmp_path, bad)


def test_a_text_file_is_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n")
    assert "is not a readable ONNX" in compile_error(tmp_path, bad)


def test_plain_onnx_is_not_qonnx(tmp_path):
    message = compile_error(tmp_path, plain_onnx(tmp_path / "plain.onnx"))
    assert "is a plain ONNX model, not QONNX" in message and "export_qonnx" in message


def test_missing_external_data_is_named(tmp_path):
    model, _, _ = random_qonnx_graph(3)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    message = compile_error(tmp_path, path)
    assert "external data files that are missing: weights.bin" in message


def test_unsupported_nodes_are_named_with_their_onnx_name_and_op_type(tmp_path):
    model, _, _ = random_qonnx_graph(3)
    out = model.graph.output[0].name
    model.graph.node[-1].output[0] = "scores"
    model.graph.node.append(helper.make_node("Softmax", ["scores"], [out], name="my_softmax", axis=1))
    model.graph.node.insert(0, helper.make_node("Sigmoid", ["unused_in"], ["unused_out"], name="odd_sigmoid"))
    path = tmp_path / "softmax.onnx"
    onnx.save(model, path)
    message = compile_error(tmp_path, path)
    assert "'my_softmax' (Softmax) is not supported" in message


def test_a_shape_that_does_not_match_is_named(tmp_path):
    model, shape, _ = random_qonnx_graph(5)          # a dense graph: its input width changes below
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = shape[0] + 3
    path = tmp_path / "shape.onnx"
    onnx.save(model, path)
    message = compile_error(tmp_path, path)
    assert "inputs but receives" in message or "qonnx could not read the graph" in message


def test_an_input_without_a_fixed_shape(tmp_path):
    model, _, _ = random_qonnx_graph(5)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, path)
    message = compile_error(tmp_path, path)
    assert "fixed shape" in message or "qonnx could not read the graph" in message


def test_a_float_first_layer_with_a_scale_that_cannot_be_exact(tmp_path):
    seed = next(s for s in range(200) if random_qonnx_graph(s)[2] == "1/256")     # a graph without input quantizer
    model, _, _ = random_qonnx_graph(seed)
    path = tmp_path / "plain_input.onnx"
    onnx.save(model, path)
    message = compile_error(tmp_path, path, "--input-scale", "1/255")
    assert "is not a power of two" in message and "--input-scale 1/256" in message


@pytest.mark.parametrize("flags,words", [
    (["--input-bits", "0"], "--input-bits must be an integer from 1 to"),
    (["--input-scale", "abc"], "--input-scale must be a positive number or fraction"),
    (["--input-scale", "-1/255"], "--input-scale must be a positive number or fraction"),
])
def test_bad_input_mapping_options(tmp_path, flags, words):
    assert words in compile_error(tmp_path, TFC, *flags)


def test_input_mapping_options_are_refused_for_a_bnn2hw_model(tmp_path):
    message = compile_error(tmp_path, ROOT / "models" / "digits_mlp.pt", "--input-bits", "8")
    assert "describe a QONNX model's input" in message


def test_predict_runs_the_golden_model_of_a_qonnx_file(tmp_path):
    from bnn2hw.frontend import load_qonnx
    x = np.random.default_rng(2).integers(0, 256, size=(20, 1, 28, 28))
    np.save(tmp_path / "x.npy", x)
    result = CliRunner().invoke(cli, ["predict", str(TFC), "--inputs", str(tmp_path / "x.npy"), "--out",
                                      str(tmp_path / "y.npz")])
    assert result.exit_code == 0, result.output
    classes = np.load(tmp_path / "y.npz")["classes"]
    assert np.array_equal(classes, load_qonnx(TFC).forward(x).argmax(axis=1))


def test_a_transpose_of_activations_is_named(tmp_path):
    """A Transpose between layers reorders the data (FINN's NHWC conversions): named, not ignored."""
    model, _, _ = random_qonnx_graph(3)
    matmul = next(n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and n is not model.graph.node[-1])
    source = matmul.input[0]
    model.graph.node.insert(list(model.graph.node).index(matmul),
                            helper.make_node("Transpose", [source], ["transposed"], name="nhwc_swap", perm=[0, 1]))
    matmul.input[0] = "transposed"
    path = tmp_path / "transpose.onnx"
    onnx.save(model, path)
    assert "'nhwc_swap' (Transpose) is not supported" in compile_error(tmp_path, path)
