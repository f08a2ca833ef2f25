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


def test_digits_demo_is_bit_exact_on_the_whole_test_split(tmp_path):
    from bnn2hw.errors import ToolNotFoundError
    from bnn2hw.sim.tools import find_simulator
    try:
        find_simulator("verilator")
    except ToolNotFoundError as e:
        pytest.skip(str(e))
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


def test_cli_simulate_digits_test_split_matches_torch_accuracy(tmp_path):
    """`bnn2hw simulate models/digits_mlp.pt` on the whole test split: hardware accuracy == PyTorch's."""
    import re

    import numpy as np
    from click.testing import CliRunner

    from bnn2hw.cli import cli
    from bnn2hw.datasets import load_digits_split
    from bnn2hw.errors import ToolNotFoundError
    from bnn2hw.sim.tools import find_simulator
    try:
        find_simulator("verilator")
    except ToolNotFoundError as e:
        pytest.skip(str(e))
    split = load_digits_split()
    np.save(tmp_path / "x.npy", split.x_test)
    np.save(tmp_path / "y.npy", split.y_test)
    result = CliRunner().invoke(cli, ["simulate", str(ROOT / "models" / "digits_mlp.pt"), "--inputs",
                                      str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                                      "--simulator", "verilator", "--out", str(tmp_path / "y.npz")])
    assert result.exit_code == 0, result.output
    assert "360 frames, 0 mismatches" in result.output
    hardware, pytorch = re.search(r"accuracy: hardware ([\d.]+)%, PyTorch ([\d.]+)%", result.output).groups()
    assert hardware == pytorch
    classes = np.load(tmp_path / "y.npz")["classes"]
    assert f"{np.mean(classes == split.y_test):.2%}" == f"{hardware}%"


def test_depth_scaling_quick_mode_writes_its_artefacts(tmp_path):
    """The experiment's pipeline (training every arm, table, plot, raw runs); accuracies are not asserted."""
    import json
    proc = run_script(ROOT / "bench" / "depth_scaling.py", "--quick", "--jobs", "1", "--out-dir", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "depth_scaling_quick.md").read_text()
    runs = json.loads((tmp_path / "depth_scaling_quick.json").read_text())["runs"]
    arms = ["ste", "stompp", "stompp+sg", "stompp reverse", "stompp global", "bwn stompp", "bwn reverse", "bwn global"]
    header = next(line for line in table.splitlines() if line.startswith("| hidden layers"))
    assert all(f" {arm} |" in header for arm in arms)
    assert {(r["arm"], r["depth"]) for r in runs} == {(a, d) for a in arms for d in (2, 8)}
    rows = [line for line in table.splitlines() if re.match(r"\| (2|8) \|", line)]
    assert len(rows) == 2 and all(line.count("±") == len(arms) for line in rows)
    png = (tmp_path / "depth_scaling_quick.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
