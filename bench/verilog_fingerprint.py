"""SHA-256 of the Verilog bnn2hw writes for the shipped models and FINN's suite, on every hardware target.

    python bench/verilog_fingerprint.py --models build/fingerprint --json build/fingerprint/hashes.json
    python bench/verilog_fingerprint.py --models build/fingerprint --check build/fingerprint/hashes.json

A refactor that must not change the hardware records the hashes first and checks them after. The FINN
networks get random weights (seeded) and are saved once under ``--models``, so that the check after a
change compiles the very same files. Networks: models/digits_mlp.pt and models/digits_cnn.pt with the
default folding, FINN's TFC/SFC/LFC/CNV with FINN's folding (bench/finn_suite.py); targets: generic,
xilinx-7, ice40-up5k, ecp5; plus the board tops (UART bridge around the network) of digits_mlp for the
iCEBreaker and the ULX3S-85F, and the Verilog a boardless ``bnn2hw compile`` writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "examples"))

TARGETS = ("generic", "xilinx-7", "ice40-up5k", "ecp5")
NETWORKS = ("digits_mlp", "digits_cnn", "tfc", "sfc", "lfc", "cnv")
BOARDS = ("icebreaker", "ulx3s-85f")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_models(directory: Path) -> dict[str, tuple[Path, Path | None]]:
    """model file and folding file (None: the default folding) of every network, saved once."""
    import bnn2hw
    from finn_suite import FOLDINGS, HIDDEN, dense_model
    directory.mkdir(parents=True, exist_ok=True)
    out = {"digits_mlp": (ROOT / "models" / "digits_mlp.pt", None),
           "digits_cnn": (ROOT / "models" / "digits_cnn.pt", None)}
    for name in ("tfc", "sfc", "lfc", "cnv"):
        model = directory / f"{name}.pt"
        if name == "cnv":
            folding = ROOT / "models" / "cnv_w1a1_folding.json"
            if not model.exists():
                from cnv_w1a1 import INPUT_SHAPE, random_cnv
                bnn2hw.save(random_cnv(0), model, input_shape=INPUT_SHAPE)
        else:
            folding = directory / f"{name}_folding.json"
            if not model.exists():
                bnn2hw.save(dense_model(HIDDEN[name], 0), model, input_shape=(784,))
            folding.write_text(json.dumps({"layers": {k: {"pe": pe, "simd": simd}
                                                      for k, (pe, simd) in FOLDINGS[name][0].items()}}))
        out[name] = (model, folding)
    return out


def _network_verilog(job) -> list[tuple[str, str, float]]:
    """(key, sha256, seconds) of each target's network Verilog for one model."""
    from amaranth.back import verilog

    from bnn2hw.codegen import build_network
    from bnn2hw.flow import compile_model
    from bnn2hw.plan import plan_network
    name, model, folding, targets = job
    compiled = compile_model(model, folding_file=folding)
    rows = []
    for t in targets:
        t0 = time.perf_counter()
        network = build_network(plan_network(compiled.graph, t))
        rows.append((f"{name}/{t}", _sha(verilog.convert(network, name="bnn2hw_top", emit_src=False)),
                     time.perf_counter() - t0))
    return rows


def _board_verilog(job) -> list[tuple[str, str, float]]:
    from amaranth.back import verilog

    from bnn2hw.board.boards import get_board
    from bnn2hw.flow import compile_model
    from bnn2hw.hw.board_top import BoardTop
    name, model, board_name = job
    t0 = time.perf_counter()
    board = get_board(board_name)
    compiled = compile_model(model, board=board, clock_mhz=board.clock_mhz)
    top = BoardTop(list(compiled.stages), divisor=BoardTop.divisor_for(board.clock_mhz * 1e6, 115_200),
                   n_leds=min(board.n_leds, compiled.stages[-1].class_width))
    return [(f"{name}/board-{board_name}", _sha(verilog.convert(top, name="bnn2hw_board_top", emit_src=False)),
             time.perf_counter() - t0)]


def _compile_verilog(job) -> list[tuple[str, str, float]]:
    """The Verilog file a boardless compile writes (the CLI's path, through the output directory)."""
    import numpy as np

    from bnn2hw.flow import BuildConfig, FoldingFile, build, compile_model
    name, model, folding = job
    t0 = time.perf_counter()
    shape = compile_model(model, folding_file=folding).graph.input.shape
    with tempfile.TemporaryDirectory() as tmp:
        config = BuildConfig(model=Path(model), out_dir=Path(tmp) / "out", inputs=np.zeros((2,) + shape, np.int64),
                             **({"folding": FoldingFile(Path(folding))} if folding else {}))
        out = build(config).written
        text = (out / "verilog" / "bnn2hw_top.v").read_text()
    return [(f"{name}/compile", _sha(text), time.perf_counter() - t0)]


def fingerprint(models: dict, networks, jobs: int) -> dict[str, str]:
    work = []
    for name in networks:
        model, folding = models[name]
        # CNV's export is the slow one: one job per target, so that they run side by side
        per = [(t,) for t in TARGETS] if name == "cnv" else [TARGETS]
        work += [(_network_verilog, (name, model, folding, ts)) for ts in per]
        if name in ("digits_mlp", "digits_cnn", "tfc"):
            work.append((_compile_verilog, (name, model, folding)))
    work += [(_board_verilog, ("digits_mlp", models["digits_mlp"][0], b)) for b in BOARDS]
    hashes = {}
    # spawn: the parent has torch's threads running, and a forked child can hang on their locks
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, arg) for fn, arg in work]
        for fut in futures:
            for key, sha, seconds in fut.result():
                hashes[key] = sha
                print(f"{key:28s} {sha[:16]}  {seconds:6.1f} s", flush=True)
    return dict(sorted(hashes.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "build" / "fingerprint",
                    help="where the FINN networks' model files are saved (once) and read")
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--jobs", type=int, default=2)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--json", type=Path, help="write the hashes here")
    group.add_argument("--check", type=Path, help="compare with the hashes recorded here")
    args = ap.parse_args()
    models = prepare_models(args.models)
    networks = [n for n in args.networks.split(",") if n]
    hashes = fingerprint(models, networks, args.jobs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(hashes, indent=1) + "\n")
        print(f"wrote {len(hashes)} hashes to {args.json}")
        return 0
    recorded = json.loads(args.check.read_text())
    differ = [k for k in hashes if k in recorded and recorded[k] != hashes[k]]
    missing = [k for k in hashes if k not in recorded]
    for k in differ:
        print(f"DIFFERS: {k}")
    print(f"{len(hashes) - len(differ) - len(missing)} identical, {len(differ)} differ, {len(missing)} not recorded")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
