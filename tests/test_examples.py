"""Every example script runs (the quick-start demo end to end, in Verilator RTL)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.rtl("verilator")
def test_digits_demo_is_bit_exact_on_the_whole_test_split(tmp_path):
    proc = run_script(ROOT / "examples" / "digits_demo.py", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RTL vs golden model mismatches   : 0 of 360 frames" in proc.stdout
    lines = {l.split(":")[0].strip(): l.split(":", 1)[1].strip() for l in proc.stdout.splitlines() if ":" in l}
    assert lines["PyTorch (eval, float64) accuracy"] == lines["hardware (verilator RTL) accuracy"]
    measured, estimated = lines["cycles per frame"].replace(" measured,", "").split()[:2]
    assert measured == estimated
    assert (tmp_path / "out" / "verilog" / "bnn2hw_top.v").is_file()


def test_golden_throughput_benchmark_runs(tmp_path):
    proc = run_script(ROOT / "bench" / "golden_throughput.py", "--batch", "256", "--repeats", "1",
                      "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stderr
    assert "ratio golden / torch fp32" in proc.stdout and (tmp_path / "b.json").is_file()


@pytest.mark.rtl("verilator")
@pytest.mark.parametrize("model", ["digits_mlp.pt", "digits_cnn.pt", "digits_w2a2.pt"])
def test_cli_simulate_digits_test_split_matches_torch_accuracy(tmp_path, model):
    """`bnn2hw simulate models/<model>` on the whole test split: hardware accuracy == PyTorch's (the CNN
    takes the flat 64-pixel rows as its (1, 8, 8) images)."""
    import re

    import numpy as np
    from click.testing import CliRunner

    from bnn2hw.cli import cli
    from bnn2hw.data import load_digits_split
    split = load_digits_split()
    np.save(tmp_path / "x.npy", split.x_test)
    np.save(tmp_path / "y.npy", split.y_test)
    result = CliRunner().invoke(cli, ["simulate", str(ROOT / "models" / model), "--inputs",
                                      str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                                      "--simulator", "verilator", "--out", str(tmp_path / "y.npz")])
    assert result.exit_code == 0, result.output
    assert "360 frames, 0 mismatches" in result.output
    hardware, pytorch = re.search(r"accuracy: hardware ([\d.]+)%, PyTorch ([\d.]+)%", result.output).groups()
    assert hardware == pytorch
    classes = np.load(tmp_path / "y.npz")["classes"]
    assert f"{np.mean(classes == split.y_test):.2%}" == f"{hardware}%"


def test_depth_scaling_quick_mode_writes_its_artefacts(tmp_path):
    """The experiment's pipeline (the rate search on a validation split at every depth, every arm in both families,
    table, plot, raw runs, resuming); accuracies are not asserted."""
    import json
    proc = run_script(ROOT / "bench" / "depth_scaling.py", "--quick", "--out-dir", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "depth_scaling_quick.md").read_text()
    runs = json.loads((tmp_path / "depth_scaling_quick.json").read_text())["runs"]
    arms = ["ste", "stompp", "stompp+sg", "reverse", "global", "bwn"]
    tests = {(r["family"], r["arm"], r["depth"]) for r in runs if r["kind"] == "test"}
    assert tests == {(f, a, d) for f in ("plain", "residual") for a in arms for d in (2, 3)}
    searched = {(r["family"], r["arm"], r["lr"]) for r in runs if r["kind"] == "search"}
    assert searched == {(f, a, lr) for f in ("plain", "residual") for a in arms for lr in (0.03, 0.1)}
    for family in ("plain", "residual"):   # every test run uses the rate its arm's search chose at its depth
        for arm in arms:
            for depth in (2, 3):
                found = [r for r in runs if r["kind"] == "search" and (r["family"], r["arm"], r["depth"]) ==
                         (family, arm, depth)]
                best = max(r["accuracy"] for r in found)
                chosen = next(r["lr"] for r in found if r["accuracy"] == best)
                assert {r["lr"] for r in runs if r["kind"] == "test" and (r["family"], r["arm"], r["depth"]) ==
                        (family, arm, depth)} == {chosen}
    for family in ("plain", "residual"):
        section = table.split(f"## digits, {family}")[1].split("##")[0]
        header = next(line for line in section.splitlines() if line.startswith("| hidden layers"))
        assert all(f" {arm} |" in header for arm in arms)
        rows = [line for line in section.splitlines() if re.match(r"\| (2|3) \|", line)]
        assert len(rows) == 2 and all(line.count("±") == len(arms) for line in rows)
    png = (tmp_path / "depth_scaling_quick.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    proc = run_script(ROOT / "bench" / "depth_scaling.py", "--quick", "--out-dir", tmp_path)   # resumes: no new run
    assert proc.returncode == 0 and "] digits" not in proc.stdout, proc.stdout + proc.stderr
    assert len(json.loads((tmp_path / "depth_scaling_quick.json").read_text())["runs"]) == len(runs)


def test_cnv_example_builds_finns_topology_for_finns_folding_file(tmp_path):
    import json

    import bnn2hw
    from bnn2hw.frontend import import_model
    proc = run_script(ROOT / "examples" / "cnv_w1a1.py", "--out", tmp_path / "cnv.pt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = bnn2hw.load(tmp_path / "cnv.pt")
    graph = import_model(model, model.input_shape)
    layers = [(n.name, n.out_features, getattr(n, "window", None)) for n in graph.nodes if hasattr(n, "weight")]
    assert [(name, out) for name, out, _ in layers] == [
        ("conv0", 64), ("conv1", 64), ("conv2", 128), ("conv3", 128), ("conv4", 256), ("conv5", 256),
        ("dense6", 512), ("dense7", 512), ("dense8", 10)]
    assert [w.in_shape for _, _, w in layers[:6]] == [(32, 32, 3), (30, 30, 64), (14, 14, 64), (12, 12, 128),
                                                       (5, 5, 128), (3, 3, 256)]
    folding = json.loads((ROOT / "models" / "cnv_w1a1_folding.json").read_text())["layers"]
    assert list(folding) == [name for name, _, _ in layers]
