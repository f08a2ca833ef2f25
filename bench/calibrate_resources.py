"""Calibrate the analytic resource model (bnn2hw/estimate/) against Yosys, and print both.

    python bench/calibrate_resources.py                       # all designs, all three families
    python bench/calibrate_resources.py --family ice40 --design mlp_default
    python bench/calibrate_resources.py --fit                 # also refit COST_MODELS' LUT coefficients

Each design is a small folded graph (the shipped digits models with several foldings, and random MLPs
and CNNs from bnn2hw.testing). Its Verilog is exported with ``export_verilog(build_network(graph))``
and synthesised with ``bnn2hw.synth.synthesize`` (YoWASP Yosys: synth_ice40 -dsp, synth_ecp5,
synth_xilinx -family xc7), one run at a time. Results are cached in ``--work`` (default
``build/calibrate_resources``) under the SHA-1 of the Verilog and the family, so a rerun after a
hardware change re-synthesises exactly the designs whose Verilog changed, and a rerun after a model
change costs nothing. The table gives model and measured LUTs (as ``synth.Resources.luts`` counts
them), FFs, block RAM and DSPs per design, and the relative LUT error.

``--fit`` solves for the LUT coefficients of each family (non-negative least squares on the
per-design feature sums of ``resources.lut_features``, relative error weighted) and prints a
``COST_MODELS`` table to paste into bnn2hw/estimate/cost_model.py. Re-calibrating after a hardware change is this
one command: ``python bench/calibrate_resources.py --fit``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.codegen import build_network  # noqa: E402
from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.codegen.export import export_verilog  # noqa: E402
from bnn2hw.frontend import import_model  # noqa: E402
from bnn2hw.passes import apply_folding, fold_batchnorm  # noqa: E402
from bnn2hw.testing import RandomModelSpec, build_random_conv_model, build_random_model  # noqa: E402

FAMILIES = ("ice40", "ecp5", "xilinx")


def _shipped(name: str):
    from bnn2hw.flow import fold_model
    return fold_model(ROOT / "models" / name)[1]


def _mlp(seed: int, bits: int, widths: tuple[int, ...], head_bn: bool = False):
    spec = RandomModelSpec(seed=seed, input_bits=bits, widths=widths, head_bn=head_bn, biases=False)
    return fold_batchnorm(import_model(build_random_model(spec), (widths[0],)))


def _cnn(seed: int):
    model, shape = build_random_conv_model(seed, max_channels=16)
    return fold_batchnorm(import_model(model, shape))


def _fold(graph, spec):
    """``spec``: folding overrides, None (the default folding) or a function graph → {layer: Folding}."""
    if callable(spec):
        spec = {name: {"pe": f.pe, "simd": f.simd} for name, f in spec(graph).items()}
    return apply_folding(graph, spec)


def _auto(cycles: int):
    from bnn2hw.estimate import fold_for_cycles
    return lambda graph: fold_for_cycles(graph, cycles)


#: name → (builder of the BatchNorm-folded graph, folding overrides or None for the default folding).
#: Chosen to move the model's features independently: binary and pixel lanes, PE vs SIMD, deep and
#: shallow ROMs (block RAM or logic), wide word multiplexers (large SF), affine heads, conv stages.
DESIGNS = {
    "mlp_default": (lambda: _shipped("digits_mlp.pt"), None),
    "mlp_pe": (lambda: _shipped("digits_mlp.pt"),
               {"dense0": {"pe": 4, "simd": 16}, "dense1": {"pe": 8, "simd": 16}, "dense2": {"pe": 2, "simd": 32}}),
    "mlp_narrow": (lambda: _shipped("digits_mlp.pt"),
                   {"dense0": {"pe": 1, "simd": 4}, "dense1": {"pe": 1, "simd": 8}, "dense2": {"pe": 1, "simd": 8}}),
    "unrolled": (lambda: _mlp(101, 1, (24, 16, 10)),
                 {"dense0": {"pe": 16, "simd": 24}, "dense1": {"pe": 10, "simd": 16}}),
    "bin_odd": (lambda: _mlp(102, 1, (97, 61, 37, 7)),
                {"dense0": {"pe": 3, "simd": 25}, "dense1": {"pe": 5, "simd": 13}, "dense2": {"pe": 7, "simd": 37}}),
    "pix8_affine": (lambda: _mlp(103, 8, (40, 64, 12), head_bn=True),
                    {"dense0": {"pe": 2, "simd": 8}, "dense1": {"pe": 4, "simd": 16}}),
    "cnn_default": (lambda: _shipped("digits_cnn.pt"), None),
    "cnn_pe": (lambda: _shipped("digits_cnn.pt"),
               {"conv0": {"pe": 8, "simd": 9}, "conv1": {"pe": 4, "simd": 48}, "dense2": {"pe": 4, "simd": 32},
                "dense3": {"pe": 5, "simd": 16}}),
    "cnn_random": (lambda: _cnn(17), None),
}

#: Designs the fit never sees, to state the model's error on designs it was not fitted to: foldings
#: chosen by bnn2hw/estimate/autofold.py (its real use) and a random CNN of another seed.
HOLDOUT = {
    "mlp_auto64": (lambda: _shipped("digits_mlp.pt"), _auto(64)),
    "cnn_auto200": (lambda: _shipped("digits_cnn.pt"), _auto(200)),
    "cnn_random10": (lambda: _cnn(10), None),
}
ALL_DESIGNS = {**DESIGNS, **HOLDOUT}


def _graph(name: str):
    build, spec = ALL_DESIGNS[name]
    return _fold(build(), spec)


def bench_target(family: str):
    """The family's hardware target (bnn2hw.estimate.families), except that a ROM style of "distributed" becomes
    "logic": Yosys' LUT-RAM libraries refuse ROMs (``prune_rom``), so synth_xilinx stops with "no valid
    mapping found for memory …" on a ROM marked distributed. The resource model maps it to logic too."""
    import dataclasses
    from bnn2hw.estimate import family as family_info
    target = family_info(family).target
    if target.small_rom_style == "distributed":
        target = dataclasses.replace(target, small_rom_style="logic")
    return target


def _verilog(name: str, graph, family: str, work: Path) -> Path:
    """The design as a board build of ``family`` generates it: shaped by the family's hardware target."""
    network = build_network(graph, target=bench_target(family))
    return export_verilog(network, work / name / f"verilog_{family}", graph.input.bits)


def _cached_synth(name: str, family: str, verilog: Path | None, work: Path) -> dict | None:
    """Yosys' resources of the design, from the cache when its Verilog is unchanged (``verilog`` None:
    whatever is cached, or None)."""
    from bnn2hw.synth import synthesize
    cache = work / name / f"measured_{family}.json"
    record = json.loads(cache.read_text()) if cache.is_file() else None
    if verilog is None:
        return record
    digest = hashlib.sha1(verilog.read_bytes()).hexdigest()[:16]
    if record is not None and record.get("verilog_sha1") == digest:
        return record
    t0 = time.perf_counter()
    result = synthesize(verilog, family, work / name / f"synth_{family}")
    record = {"verilog_sha1": digest, "seconds": round(time.perf_counter() - t0, 1),
              **result.resources.to_json()}
    cache.write_text(json.dumps(record, indent=2) + "\n")
    return record


_MAPPED = re.compile(r"^mapping memory bnn2hw_top\.(\S+) via \$?_*(\S+?)_*$", re.M)
_FF = re.compile(r"^using FF mapping for memory bnn2hw_top\.(\S+)$", re.M)


def yosys_memories(log: str) -> dict[str, str]:
    """Memory → the cell Yosys' memory_libmap chose ("logic" for FF mapping), from a synthesis log;
    only the generated memories (ROMs, line buffers), not the popcount lookup tables."""
    out = {m[1]: m[2] for m in _MAPPED.finditer(log)}
    out.update({m[1]: "logic" for m in _FF.finditer(log) if "$" not in m[1]})
    return out


def model_memories(est) -> dict[str, str]:
    """The same names for the model's memories: stage k is Yosys' ``layerk``; a convolution's
    window and MVU are ``layerk.window`` and ``layerk.mvu``; a pool's line buffer ``layerk.window``."""
    out, stage, after_window = {}, -1, False
    for u in est.units:
        if u.kind == "mvu" and after_window:
            prefix, after_window = f"layer{stage}.mvu", False
        else:
            stage += 1
            after_window = u.kind == "window"
            prefix = f"layer{stage}.window" if u.kind in ("window", "pool") else f"layer{stage}"
        for m in u.memories:
            what = "lines" if m.name.endswith("line buffer") else m.name.rsplit(" ", 1)[-1]
            out[f"{prefix}.{what}"] = m.cell
    return out


def memory_kind(cell: str) -> str:
    """block / lutram / logic / constant, for Yosys' and the model's cell names alike."""
    if cell in ("logic", "constant", "absent"):
        return cell
    return "lutram" if any(k in cell.upper() for k in ("LUTRAM", "DPR16X4", "RAM32M", "RAM64M")) else "block"


def _row(values) -> str:
    return " | ".join(str(v) for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=FAMILIES, action="append", help="only this family (repeatable)")
    ap.add_argument("--design", choices=sorted(ALL_DESIGNS), action="append", help="only this design (repeatable)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "calibrate_resources")
    ap.add_argument("--fit", action="store_true", help="refit the LUT coefficients and print COST_MODELS")
    ap.add_argument("--no-synth", action="store_true",
                    help="use cached measurements only (even if the hardware changed since); run no Yosys")
    ap.add_argument("--json", type=Path, help="write every model/measured pair here")
    args = ap.parse_args()
    from bnn2hw import estimate as resources
    from bnn2hw.plan import plan_network

    families = args.family or list(FAMILIES)
    names = args.design or list(ALL_DESIGNS)
    args.work.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    for name in names:
        graph = _graph(name)
        for family in families:
            verilog = None if args.no_synth else _verilog(name, graph, family, args.work)
            try:
                measured = _cached_synth(name, family, verilog, args.work)
            except Bnn2hwError as e:
                print(f"  {name} / {family}: {e}", file=sys.stderr, flush=True)
                continue
            if measured is None:
                continue
            print(f"• {name} / {family}", file=sys.stderr, flush=True)
            plan = plan_network(graph, bench_target(family))
            est = resources.estimate_resources(plan, family)
            features = resources.lut_features(plan, family)
            records.append({"design": name, "family": family, "measured": measured, "model": est.totals_json(),
                            "features": features})
            log = args.work / name / f"synth_{family}" / f"synth_{family}.log"
            if log.is_file():
                got, want = yosys_memories(log.read_text(errors="replace")), model_memories(est)
                wrong = {k: (v, got.get(k, "absent")) for k, v in want.items()
                         if memory_kind(v) != "constant" and memory_kind(v) != memory_kind(got.get(k, "absent"))}
                if wrong:
                    print(f"  memory mapping differs ({name}, {family}): model → Yosys "
                          + ", ".join(f"{k}: {a} → {b}" for k, (a, b) in wrong.items()), file=sys.stderr)
            err = (est.luts - measured["luts"]) / max(1, measured["luts"])
            rows.append([name + (" (held out)" if name in HOLDOUT else ""), family, f"{est.luts:,.0f}", f"{measured['luts']:,}", f"{100 * err:+.1f} %",
                         f"{est.ffs:,}", f"{measured['ffs']:,}", f"{est.bram_blocks:g}", f"{measured['bram']:g}",
                         est.dsp, measured["dsp"], f"{measured['seconds']} s"])
    print("| " + _row(["design", "family", "LUT model", "LUT Yosys", "error", "FF model", "FF Yosys",
                       "BRAM model", "BRAM Yosys", "DSP model", "DSP Yosys", "synth"]) + " |")
    print("|" + "---|" * 12)
    for r in rows:
        print("| " + _row(r) + " |")
    for family in families:
        for label, keep in (("calibration designs", lambda n: n in DESIGNS), ("held-out designs", lambda n: n in HOLDOUT)):
            recs = [r for r in records if r["family"] == family and keep(r["design"])]
            if not recs:
                continue
            err = lambda key, mkey: [abs(r["model"][key] - r["measured"][mkey]) / max(1, r["measured"][mkey])
                                     for r in recs]
            lut, ff = err("luts", "luts"), err("ffs", "ffs")
            exact = sum(r["model"]["bram_blocks"] == r["measured"]["bram"] and r["model"]["dsp"] == r["measured"]["dsp"]
                        for r in recs)
            print(f"{family}, {len(recs)} {label}: LUT error mean {100 * np.mean(lut):.1f} %, max {100 * max(lut):.1f} %; "
                  f"FF error mean {100 * np.mean(ff):.1f} %, max {100 * max(ff):.1f} %; block RAM and DSP exact "
                  f"in {exact} of {len(recs)}")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    if args.fit:
        for family in families:
            recs = [r for r in records if r["family"] == family and r["design"] in DESIGNS]
            if recs:
                feats, meas = [r["features"] for r in recs], [r["measured"]["luts"] for r in recs]
                coeffs = resources.fit_lut_coefficients(feats, meas, family=family)
                predict = lambda c, f: sum(c.get(k, 0.0) * v for k, v in f.items() if k != "lutram") \
                    + f.get("lutram", 0.0)
                fit_err = [abs(predict(coeffs, f) - y) / y for f, y in zip(feats, meas)]
                loo_err = []        # leave-one-out: each design predicted by a fit without it
                for i in range(len(recs)):
                    c = resources.fit_lut_coefficients(feats[:i] + feats[i + 1:], meas[:i] + meas[i + 1:],
                                                       family=family)
                    loo_err.append(abs(predict(c, feats[i]) - meas[i]) / meas[i])
                print(f"\n# {family}: refitted on {len(recs)} designs; LUT error in the fit mean "
                      f"{100 * np.mean(fit_err):.1f} % max {100 * max(fit_err):.1f} %, leave-one-out mean "
                      f"{100 * np.mean(loo_err):.1f} % max {100 * max(loo_err):.1f} %")
                print(f'"{family}": ' + json.dumps({k: round(v, 4) for k, v in sorted(coeffs.items())}) + ",")
                held = [r for r in records if r["family"] == family and r["design"] in HOLDOUT]
                held_err = [abs(predict(coeffs, r["features"]) - r["measured"]["luts"]) / r["measured"]["luts"]
                            for r in held] or [0.0]
                r3 = lambda v: round(float(v), 3)
                print(f'CALIBRATION["{family}"] = ' + json.dumps(
                    {"designs": len(recs), "lut_error_fit_mean": r3(np.mean(fit_err)), "lut_error_fit_max": r3(max(fit_err)),
                     "lut_error_loo_mean": r3(np.mean(loo_err)), "lut_error_loo_max": r3(max(loo_err)),
                     "holdout_designs": len(held), "lut_error_holdout_mean": r3(np.mean(held_err)),
                     "lut_error_holdout_max": r3(max(held_err)),
                     "lut_error_max": r3(max(max(fit_err), max(held_err)))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
