"""LUTs per PE×SIMD lane of one matrix-vector unit, per hardware target and FPGA family.

    python bench/mvu_lanes.py --n-in 832 --n-out 1024 --pe 32 --simd 64 --targets generic,xilinx-7 \\
        --families xilinx [--pixel-bits 0] [--pnr] [--json out.json]

A target may carry overrides of its fields: ``--targets xilinx-7:pipeline=0,generic:bram_min_bits=4096``.

Builds one binary-input threshold MVU (random weights and thresholds inside the popcount range,
seeded), exports it as Verilog and synthesises it with Yosys (bnn2hw.synth). With ``--pnr`` it also
places and routes it out of context (iCE40 UP5K / ECP5-85F) for Fmax. Prints one row per target and
family: LUTs, LUTs per lane, FFs, carry cells, block RAM, LUT RAM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from amaranth.back import verilog  # noqa: E402

from bnn2hw.hw import MatrixVectorUnit, MVUParams  # noqa: E402
from bnn2hw.plan import LayerPlan, target_for  # noqa: E402
from bnn2hw.testing import random_threshold_layer  # noqa: E402
from bnn2hw.synth import place_and_route, synthesize  # noqa: E402

PNR = {"ice40": ("up5k", "sg48"), "ecp5": ("85k", "CABGA381")}


def random_mvu(n_in: int, n_out: int, pe: int, simd: int, target, pixel_bits: int = 0, seed: int = 0) -> MVUParams:
    return LayerPlan(random_threshold_layer(n_in, n_out, pixel_bits, seed), pe, simd, target).mvu


def parse_target(text: str):
    """A target name with optional overrides: ``xilinx-7:pipeline=0:compressor=0``."""
    name, *overrides = text.split(":")
    target = target_for(name)
    fields = {}
    for item in overrides:
        key, value = item.split("=")
        current = getattr(target, key)
        fields[key] = (value not in ("0", "false", "False")) if isinstance(current, bool) else \
            (None if value == "none" else type(current)(value) if current is not None else int(value))
    return dataclasses.replace(target, **fields) if fields else target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-in", type=int, default=832)
    ap.add_argument("--n-out", type=int, default=1024)
    ap.add_argument("--pe", type=int, default=32)
    ap.add_argument("--simd", type=int, default=64)
    ap.add_argument("--pixel-bits", type=int, default=0)
    ap.add_argument("--targets", default="generic")
    ap.add_argument("--families", default="xilinx")
    ap.add_argument("--pnr", action="store_true")
    ap.add_argument("--freq", type=float, default=100.0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bnn2hw-mvu-") as scratch:
        work = args.work or Path(scratch)
        for tname in args.targets.split(","):
            target = parse_target(tname)
            p = random_mvu(args.n_in, args.n_out, args.pe, args.simd, target, args.pixel_bits)
            d = work / tname
            d.mkdir(parents=True, exist_ok=True)
            v = d / "bnn2hw_top.v"
            v.write_text(verilog.convert(MatrixVectorUnit(p), name="bnn2hw_top", emit_src=False))
            for fam in args.families.split(","):
                pnr = args.pnr and fam in PNR
                s = synthesize(v, fam, d / fam, write_json=pnr, ooc_wrapper=pnr)
                r = s.resources
                row = {"target": tname, "family": fam, "lanes": args.pe * args.simd, **r.to_json(),
                       "luts_per_lane": round(r.luts / (args.pe * args.simd), 3), "synth_s": round(s.seconds)}
                if pnr:
                    dev, pkg = PNR[fam]
                    pr = place_and_route(s.json_path, fam, dev, pkg, d / fam, freq_mhz=args.freq)
                    row["fmax_mhz"] = pr.fmax
                    row["utilisation"] = {k: v for k, v in pr.utilisation.items() if v[0]}
                rows.append(row)
                print(f"{tname:12s} {fam:7s} LUTs {r.luts:6d} ({row['luts_per_lane']:.2f}/lane)  FF {r.ffs:6d}  "
                      f"carry {r.carry:4d}  BRAM {r.bram:5.1f}  LUTRAM {r.lutram:4d}  DSP {r.dsp}"
                      + (f"  Fmax {row['fmax_mhz']:.1f} MHz" if "fmax_mhz" in row else "")
                      + f"  ({row['synth_s']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
