"""FINN's benchmark networks (TFC, SFC, LFC, CNV; W1A1, W1A2, W2A2) with FINN's folding, through bnn2hw, measured.

    python bench/finn_suite.py [--networks tfc,sfc,lfc,cnv] [--families xilinx,ice40,ecp5] [--pnr]
    python bench/finn_suite.py --networks tfc-w1a2,tfc-w2a2,lfc-w1a2,cnv-w1a2,cnv-w2a2 --families xilinx
                               [--frames 3] [--json docs/finn_suite.json] [--work build/finn_suite]
    python bench/finn_suite.py --table-only --json docs/finn_suite.json --markdown docs/benchmarks.md
                                                       # the table in docs/benchmarks.md, from the records

For each network: random weights (seeded; BatchNorm statistics measured on random inputs, so every
threshold lies inside its accumulator range — sizes and cycles do not depend on the weights),
compiled with FINN's published folding (FOLDINGS below says where each comes from). A name with a
``-w1a2`` or ``-w2a2`` suffix is FINN's multi-bit variant of the network: 2-bit activations on Brevitas'
narrow signed grid {−1, 0, +1} (FINN's A2; the FC networks' input becomes 2-bit pixels, FINN's input
quantizer being 2 bits too) and, for W2A2, ternary weights in every layer. For each
family the network is built for that family's hardware target (bnn2hw/plan/target.py: xilinx-7, ice40-up5k,
ecp5), exported as Verilog and synthesised with Yosys (synth_xilinx -family xc7, synth_ice40 -dsp,
synth_ecp5; bnn2hw.synth). With ``--pnr`` it is placed and routed out of context (a three-pin
wrapper: bnn2hw.synth.nextpnr) on the ECP5-85F, and on the iCE40 UP5K when synthesis says it fits.
The Xilinx-target network is simulated for ``--frames`` random frames (Amaranth's simulator for
TFC/SFC, Verilator for LFC/CNV): outputs against the golden model, cycles per frame and latency
measured free-running. Every ratio against FINN printed here is computed from these measurements
and FINN's published figures (FINN_REFERENCE; /work/shared/design/ANCHORS.md §1.5, §5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import bnn2hw  # noqa: E402
from bnn2hw import golden  # noqa: E402
from bnn2hw.codegen import build_network  # noqa: E402
from amaranth.back import rtlil  # noqa: E402

from bnn2hw.codegen.export import TOP_NAME, export_verilog  # noqa: E402
from bnn2hw.flow import compile_model  # noqa: E402
from bnn2hw.estimate import device_capacity, family as family_info  # noqa: E402
from bnn2hw.plan import plan_network  # noqa: E402
from bnn2hw.nn import BinaryLinear, InputQuant  # noqa: E402
from cnv_w1a1 import activation  # noqa: E402
from bnn2hw.errors import ToolError  # noqa: E402
from bnn2hw.synth import place_and_route, synthesize  # noqa: E402

#: (PE, SIMD) per dense layer and where the numbers come from.
FOLDINGS = {
    "tfc": ({"dense0": (16, 49), "dense1": (8, 8), "dense2": (8, 8), "dense3": (10, 8)},
            "finn-examples build/bnn-pynq/folding_config/tfc-w1a1_folding_config.json (MVAU_hls_0..3)"),
    "sfc": ({"dense0": (16, 49), "dense1": (16, 16), "dense2": (16, 16), "dense3": (10, 16)},
            "no published W1A1 SFC folding (finn-examples ships TFC and CNV, BNN-PYNQ LFC and CNV): chosen "
            "here as TFC's first layer (PE 16, SIMD 49) with every hidden layer balanced to the same 256 cycles"),
    "lfc": ({"dense0": (32, 64), "dense1": (64, 32), "dense2": (32, 64), "dense3": (10, 8)},
            "BNN-PYNQ bnn/src/network/lfcW1A1/hw/config.h (L0 SIMD 64 PE 32, L1 32/64, L2 64/32, L3 SIMD 8 "
            "PE 16 over 10 outputs padded to 16; here PE 10, the same 128 cycles)"),
    "cnv": (None, "models/cnv_w1a1_folding.json (BNN-PYNQ cnvW1A1 config.h = finn-examples cnv-w1a1)"),
}
#: The multi-bit variants' folding, where it is not the W1A1 one.
VARIANT_FOLDINGS = {
    "tfc-w1a2": "finn-examples tfc-w1a2_folding_config.json: the W1A1 PE/SIMD",
    "tfc-w2a2": "finn-examples tfc-w2a2_folding_config.json: the W1A1 PE/SIMD",
    "lfc-w1a2": "BNN-PYNQ bnn/src/network/lfcW1A2/hw/config.h: the W1A1 PE/SIMD",
    "cnv-w1a2": "BNN-PYNQ cnvW1A2/hw/config.h: the W1A1 PE/SIMD (models/cnv_w1a1_folding.json)",
    "cnv-w2a2": "models/cnv_w2a2_folding.json (BNN-PYNQ cnvW2A2/hw/config.h)",
}
HIDDEN = {"tfc": (64, 64, 64), "sfc": (256, 256, 256), "lfc": (1024, 1024, 1024)}

#: FINN's published figures (ANCHORS.md §1.5, §5): PYNQ-Z1 (xc7z020) Vivado 2018.2 utilisation,
#: cycles per frame of the bottleneck layer, PE·SIMD lanes and the `#Ops` per frame of config.h.
FINN_REFERENCE = {
    "lfc": {"luts": 28_360, "lutram": 3_001, "ffs": 33_470, "bram": 110, "dsp": 4, "cycles_per_frame": 512,
            "lanes": 6_272, "ops_per_frame": 6_029_312,
            "source": "BNN-PYNQ lfcW1A1 README (Vivado 2018.2, PYNQ-Z1), config.h Ext Latency / #Ops"},
    "cnv": {"luts": 26_072, "lutram": 2_025, "ffs": 41_312, "bram": 124, "dsp": 24, "cycles_per_frame": 32_768,
            "lanes": 2_272, "ops_per_frame": 118_978_048,
            "source": "BNN-PYNQ cnvW1A1 README (Vivado 2018.2, PYNQ-Z1), config.h Ext Latency / #Ops"},
    "tfc": {"cycles_per_frame": 64, "lanes": 16 * 49 + 64 + 64 + 80,
            "source": "cycles and lanes from FINN's folding (max over layers of MW/SIMD · MH/PE); no published "
                      "utilisation for TFC W1A1 was found"},
    "lfc-w1a2": {"luts": 48_981, "lutram": 4_791, "ffs": 45_338, "bram": 110, "dsp": 4, "cycles_per_frame": 512,
                 "lanes": 6_272, "ops_per_frame": 6_029_312,
                 "source": "BNN-PYNQ lfcW1A2 README (Vivado 2018.2, PYNQ-Z1), config.h"},
    "cnv-w1a2": {"luts": 40_321, "lutram": 3_776, "ffs": 56_276, "bram": 131.5, "dsp": 26, "cycles_per_frame": 32_768,
                 "lanes": 2_272, "ops_per_frame": 118_978_048,
                 "source": "BNN-PYNQ cnvW1A2 README (Vivado 2018.2, PYNQ-Z1), config.h"},
    "cnv-w2a2": {"luts": 37_302, "lutram": 7_437, "ffs": 51_386, "bram": 140, "dsp": 32, "cycles_per_frame": 115_200,
                 "lanes": 8 * 3 + 16 * 16 + 8 * 16 + 8 * 16 + 4 * 8 + 8 + 2 + 4 + 4, "ops_per_frame": 118_978_048,
                 "source": "BNN-PYNQ cnvW2A2 README (Vivado 2018.2, PYNQ-Z1), config.h"},
    "tfc-w1a2": {"cycles_per_frame": 64, "lanes": 16 * 49 + 64 + 64 + 80,
                 "source": "cycles and lanes from finn-examples' folding; no published utilisation was found"},
    "tfc-w2a2": {"cycles_per_frame": 64, "lanes": 16 * 49 + 64 + 64 + 80,
                 "source": "cycles and lanes from finn-examples' folding; no published utilisation was found"},
}
NETWORKS = ("tfc", "sfc", "lfc", "cnv", "tfc-w1a2", "tfc-w2a2", "lfc-w1a2", "cnv-w1a2", "cnv-w2a2")


def precision(name: str) -> tuple[str, int, int]:
    """(base network, weight bits, activation bits) of a suite name: "cnv" → ("cnv", 1, 1),
    "tfc-w2a2" → ("tfc", 2, 2)."""
    if name not in NETWORKS:
        raise SystemExit(f"unknown network {name!r}; choose from {', '.join(NETWORKS)}")
    base, _, suffix = name.partition("-")
    if not suffix:
        return base, 1, 1
    return base, int(suffix[1]), int(suffix[3])
#: family → nextpnr device, package, target MHz (ECP5: issue 17's 150 MHz goal; nextpnr places for the
#: target it is given), bnn2hw's device table key, and the part's short name.
PNR_DEVICES = {"ecp5": ("85k", "CABGA381", 150.0, "LFE5U-85F", "ECP5-85F"),
               "ice40": ("up5k", "sg48", 48.0, "iCE40UP5K", "UP5K")}
_BLOCK_CELLS = {"ecp5": ("DP16KD", "MULT18X18D"), "ice40": ("SB_RAM40_4K", "SB_MAC16")}


def placement_overflow(total, family: str) -> str | None:
    """Why synthesis already shows that the design (wrapper included) cannot be placed on the family's
    place-and-route part, or None. Only lower bounds count: on iCE40 a logic cell holds one LUT4 and
    one FF, so the design needs at least as many cells as it has of either; on ECP5, LUT4s and FFs
    each against the part's; block RAMs and DSPs exactly."""
    cap = device_capacity(PNR_DEVICES[family][3])
    ram, dsp = _BLOCK_CELLS[family]
    if family == "ice40":
        needs = [(max(total.luts, total.ffs), cap["cells"], "logic cells (LUT4 or FF)")]
    else:
        needs = [(total.luts, cap["luts"], "LUT4"), (total.ffs, cap["ffs"], "FF")]
    needs += [(total.bram, cap["bram_blocks"], ram), (total.dsp, cap["dsp"], dsp)]
    over = [f"{need:,.0f} {what} of {have:,}" for need, have, what in needs if need > have]
    return "; ".join(over) + " (wrapper included)" if over else None


def dense_model(hidden: tuple[int, ...], seed: int, calibration: int = 512, weight_bits: int = 1,
                act_bits: int = 1):
    """784 → hidden… → 10 with 1-bit input (binarised MNIST pixels, as FINN's FC networks; 2-bit pixels
    for A2), random weights; ``weight_bits``/``act_bits`` 2: FINN's W2A2 / W1A2 (examples/cnv_w1a1.py)."""
    from bnn2hw.io import BinaryNet
    from bnn2hw.train import recalibrate_batchnorm
    torch.manual_seed(seed)
    layers: list[nn.Module] = [InputQuant(act_bits)]
    width = 784
    for h in hidden:
        layers += [BinaryLinear(width, h, weight_bits=weight_bits), nn.BatchNorm1d(h), activation(act_bits)]
        width = h
    layers.append(BinaryLinear(width, 10, weight_bits=weight_bits))
    model = BinaryNet(*layers, input_shape=(784,))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(-1.0, 1.0)
                m.bias.uniform_(-0.5, 0.5)
    recalibrate_batchnorm(model, torch.randint(0, 1 << act_bits, (calibration, 784)).float())
    return model.eval()


def build(name: str, work: Path, seed: int):
    """(compiled network, input shape, folding source)."""
    model_path = work / f"{name}.pt"
    base, wbits, abits = precision(name)
    folding, source = FOLDINGS[base]
    source = VARIANT_FOLDINGS.get(name, source)
    if base == "cnv":
        from cnv_w1a1 import INPUT_SHAPE, random_cnv
        bnn2hw.save(random_cnv(seed, weight_bits=wbits, act_bits=abits), model_path, input_shape=INPUT_SHAPE)
        folding_file = ROOT / "models" / ("cnv_w2a2_folding.json" if name == "cnv-w2a2" else "cnv_w1a1_folding.json")
        return compile_model(model_path, folding_file=folding_file), INPUT_SHAPE, source
    bnn2hw.save(dense_model(HIDDEN[base], seed, weight_bits=wbits, act_bits=abits), model_path, input_shape=(784,))
    folding_path = work / f"{name}_folding.json"
    folding_path.write_text(json.dumps({"layers": {k: {"pe": pe, "simd": simd} for k, (pe, simd) in folding.items()}}))
    return compile_model(model_path, folding_file=folding_path), (784,), source


def lanes_and_ops(compiled) -> tuple[int, int]:
    """Σ PE·SIMD over the compute layers, and binary ops per frame (2 per synapse and output position)."""
    lanes = sum(l.pe * l.simd for l in compiled.estimate.layers)
    ops = sum(2 * l.in_features * l.out_features * l.positions for l in compiled.estimate.layers)
    return lanes, ops


def simulate(compiled, network, x, verilog: Path, work: Path, simulator: str) -> dict:
    from bnn2hw.sim.amaranth_sim import measured_timing, run_network
    t0 = time.perf_counter()
    expected = golden.run(compiled.graph, x)
    stream_x = golden.channel_last(compiled.graph, x) if compiled.graph.has_convolutions else x
    stream_x = np.asarray(stream_x).reshape(len(x), -1)
    if simulator == "amaranth":
        result = run_network(network, stream_x, compiled.pixel_bits)
    else:
        from bnn2hw.sim.cocotb_runner import run_rtl
        head = network.head
        result = run_rtl(verilog, stream_x, compiled.pixel_bits, head.n_out, head.score_width, head.class_width,
                         simulator=simulator, build_dir=work / "rtl_sim", beats_per_frame=network.input_beats)
    cycles, latency = measured_timing(result)
    mismatches = int(np.sum(np.any(result.scores != expected.scores, axis=1)))
    return {"simulator": simulator, "frames": len(x), "mismatches": mismatches, "cycles_per_frame": cycles,
            "latency_cycles": latency, "seconds": round(time.perf_counter() - t0, 1)}


def run_network_suite(name: str, families: list[str], pnr: bool, frames: int, work: Path, seed: int,
                      simulator: str | None, skip_sim: bool, pnr_timeout: float | None = None,
                      from_rtlil: bool = False, synth_options: str | None = None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    compiled, shape, source = build(name, work, seed)
    lanes, ops = lanes_and_ops(compiled)
    est = compiled.estimate
    rec = {"network": name, "weights": f"random (seed {seed})", "folding_source": source,
           "layers": [{"name": l.name, "in": l.in_features, "out": l.out_features, "pe": l.pe, "simd": l.simd,
                       "cycles_per_frame": l.cycles_per_frame} for l in est.layers],
           "lanes": lanes, "ops_per_frame": ops, "cycles_per_frame_estimate": est.cycles_per_frame,
           "bottleneck": est.bottleneck, "compile_s": round(time.perf_counter() - t0, 1), "families": {}}
    print(f"== {name}: {lanes} PE·SIMD lanes, estimate {est.cycles_per_frame} cycles/frame "
          f"(bottleneck {est.bottleneck})", flush=True)
    for fam in families:
        target = family_info(fam).target
        d = work / fam
        network = build_network(plan_network(compiled.graph, target))
        t1 = time.perf_counter()
        verilog = export_verilog(network, d / "verilog", compiled.pixel_bits)
        fam_rec: dict = {"target": target.name, "verilog_s": round(time.perf_counter() - t1, 1)}
        rec["families"][fam] = fam_rec
        if fam == "xilinx" and not skip_sim:
            sim = simulator or ("amaranth" if precision(name)[0] in ("tfc", "sfc") else "verilator")
            x = np.random.default_rng(seed + 1).integers(0, 1 << compiled.pixel_bits, size=(frames,) + tuple(shape))
            fam_rec["simulation"] = simulate(compiled, network, x, verilog, d, sim)
            s = fam_rec["simulation"]
            print(f"   {fam}: {sim} {s['frames']} frames, {s['mismatches']} mismatches, {s['cycles_per_frame']} "
                  f"cycles/frame, latency {s['latency_cycles']} ({s['seconds']} s)", flush=True)
        want_pnr = pnr and fam in PNR_DEVICES
        source_file = verilog
        if from_rtlil:         # Yosys reads Amaranth's RTLIL: no write_verilog, no Verilog parse
            t1 = time.perf_counter()
            source_file = d / "rtlil" / f"{TOP_NAME}.il"
            source_file.parent.mkdir(parents=True, exist_ok=True)
            source_file.write_text(rtlil.convert(build_network(plan_network(compiled.graph, target)), name=TOP_NAME,
                                                 emit_src=False))
            fam_rec["rtlil_s"] = round(time.perf_counter() - t1, 1)
        fam_rec["synth_input"] = "rtlil" if from_rtlil else "verilog"
        if synth_options is not None:
            fam_rec["synth_options"] = synth_options
        synth = synthesize(source_file, fam, d / "synth", write_json=want_pnr, ooc_wrapper=want_pnr,
                           options=synth_options)
        r = synth.resources
        fam_rec["synth"] = {**r.to_json(), "seconds": round(synth.seconds)}
        fam_rec["luts_per_lane"] = round(r.luts / lanes, 3)
        fam_rec["ops_per_cycle_per_lut"] = round(ops / est.cycles_per_frame / r.luts, 3)
        print(f"   {fam}: {r.luts} LUTs ({fam_rec['luts_per_lane']:.2f}/lane), {r.ffs} FFs, {r.carry} carry, "
              f"{r.bram} BRAM, {r.lutram} LUT RAM, {r.dsp} DSP ({synth.seconds:.0f} s)", flush=True)
        if want_pnr:
            dev, pkg, freq, _, part = PNR_DEVICES[fam]
            overflow = placement_overflow(synth.total, fam)
            if overflow:
                fam_rec["pnr"] = {"skipped": f"does not fit the {part}: {overflow}"}
                print(f"   {fam}: place and route skipped: {fam_rec['pnr']['skipped']}", flush=True)
                continue
            try:
                pr = place_and_route(synth.json_path, fam, dev, pkg, d / "synth", freq_mhz=freq, timeout=pnr_timeout)
            except ToolError as e:
                if "ran longer than" in str(e):
                    fam_rec["pnr"] = {"stopped": f"not finished: nextpnr-{fam} stopped after {pnr_timeout:.0f} s"}
                    print(f"   {fam}: {fam_rec['pnr']['stopped']}", flush=True)
                    continue
                fam_rec["pnr"] = {"failed": str(e).splitlines()[:6]}
                print(f"   {fam}: nextpnr failed: {str(e).splitlines()[:3]}", flush=True)
                continue
            fam_rec["pnr"] = {**pr.to_json(), "utilisation": {k: list(v) for k, v in pr.utilisation.items() if v[0]}}
            print(f"   {fam}: {dev} Fmax {pr.fmax:.1f} MHz (target {freq:g}: {'met' if pr.passed else 'missed'}), "
                  f"{ {k: v for k, v in pr.utilisation.items() if v[0] and k[:5] in ('TRELL', 'ICEST', 'DP16K', 'MULT1')} }",
                  flush=True)
    return rec


def ratios(rec: dict) -> dict:
    """Measured / FINN, where FINN published the figure."""
    ref = FINN_REFERENCE.get(rec["network"])
    x = rec["families"].get("xilinx", {})
    if not ref:
        return {}
    out = {}
    cycles = x.get("simulation", {}).get("cycles_per_frame", rec["cycles_per_frame_estimate"])
    out["cycles_per_frame"] = round(cycles / ref["cycles_per_frame"], 3)
    if "luts" in ref and "synth" in x:
        s = x["synth"]
        out["luts"] = round(s["luts"] / ref["luts"], 3)
        out["ffs"] = round(s["ffs"] / ref["ffs"], 3)
        out["bram"] = round(s["bram"] / ref["bram"], 3)
        out["luts_per_lane"] = round((s["luts"] / rec["lanes"]) / (ref["luts"] / ref["lanes"]), 3)
        ours = rec["ops_per_frame"] / cycles / s["luts"]
        finn = ref["ops_per_frame"] / ref["cycles_per_frame"] / ref["luts"]
        out["ops_per_cycle_per_lut"] = round(ours / finn, 3)
    return out


FAMILY_TOOLS = {"xilinx": "synth_xilinx -family xc7", "ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5"}


def _fmax_cell(fam: str, rec: dict) -> str:
    pnr = rec.get("pnr")
    if fam not in PNR_DEVICES:
        return "no open place-and-route for 7-series"
    if pnr is None:
        return "not run"
    if "skipped" in pnr:
        return pnr["skipped"]
    if "stopped" in pnr:
        return pnr["stopped"]
    if "failed" in pnr:
        head = pnr["failed"][0].split(": ", 1)[-1].rstrip(":")
        errors = [line.strip() for line in pnr["failed"][1:] if "ERROR" in line]
        return "; ".join([head] + errors[:1])
    fmax = min(pnr["fmax_mhz"].values())         # one clock out of context; per clock in the record
    return f"{fmax:.1f} MHz on the {PNR_DEVICES[fam][4]}"


def markdown_table(doc: dict) -> str:
    """The suite's one table (every network × family measured so far) and the ratios against FINN,
    as Markdown, from the JSON records alone."""
    order = [n for n in NETWORKS if n in doc["networks"]]
    lines = ["| network | lanes | family (Yosys) | LUTs | FFs | block RAM | DSP | LUTs / lane | binary ops / cycle / LUT "
             "| Fmax (nextpnr, out of context) | cycles / frame, measured (estimate) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        rec = doc["networks"][name]
        sim = rec["families"].get("xilinx", {}).get("simulation")
        cycles = (f"{sim['cycles_per_frame']:,} ({rec['cycles_per_frame_estimate']:,}); {sim['simulator']}, "
                  f"{sim['frames']} frames, {sim['mismatches']} mismatches" if sim
                  else f"not simulated ({rec['cycles_per_frame_estimate']:,})")
        for fam in ("xilinx", "ice40", "ecp5"):
            f = rec["families"].get(fam)
            if not f or "synth" not in f:
                continue
            syn = f["synth"]
            lines.append(f"| {name.upper()} | {rec['lanes']:,} | {fam} ({FAMILY_TOOLS[fam]}) | {syn['luts']:,} | "
                         f"{syn['ffs']:,} | {syn['bram']:,.{1 if syn['bram'] % 1 else 0}f} | {syn['dsp']} | "
                         f"{f['luts_per_lane']:.2f} | {f['ops_per_cycle_per_lut']:.3f} | {_fmax_cell(fam, f)} | "
                         f"{cycles if fam == 'xilinx' else 'same design function and interval'} |")
    ref_rows = [n for n in order if doc["networks"][n].get("ratios_vs_finn", {}).get("luts") is not None]
    if ref_rows:
        lines += ["", "Ratios bnn2hw / FINN (FINN: the whole PYNQ-Z1 accelerator after Vivado; bnn2hw: the network alone "
                      "after Yosys; lower is better except ops per cycle per LUT):", "",
                  "| network | LUTs | FFs | block RAM | LUTs per lane | binary ops per cycle per LUT | cycles per frame |",
                  "|---|---|---|---|---|---|---|"]
        for name in ref_rows:
            r, ref = doc["networks"][name]["ratios_vs_finn"], doc["finn_reference"][name]
            syn = doc["networks"][name]["families"]["xilinx"]["synth"]
            lines.append(f"| {name.upper()} | {syn['luts']:,} / {ref['luts']:,} = **{r['luts']:.3f}** | {r['ffs']:.3f} | "
                         f"{r['bram']:.3f} | {r['luts_per_lane']:.3f} | {r['ops_per_cycle_per_lut']:.3f} | "
                         f"{r['cycles_per_frame']:.3f} |")
    return "\n".join(lines) + "\n"


TABLE_BEGIN, TABLE_END = "<!-- finn_suite table: begin (bench/finn_suite.py writes it) -->", "<!-- finn_suite table: end -->"


def write_table(path: Path, table: str) -> None:
    """Put ``table`` between the suite's markers if ``path`` has them (docs/benchmarks.md), else write
    it as the whole file."""
    text = path.read_text() if path.is_file() else ""
    if TABLE_BEGIN in text and TABLE_END in text:
        head, rest = text.split(TABLE_BEGIN, 1)
        path.write_text(head + TABLE_BEGIN + "\n" + table + TABLE_END + rest.split(TABLE_END, 1)[1])
    else:
        path.write_text(table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="tfc,sfc,lfc,cnv")
    ap.add_argument("--families", default="xilinx,ice40,ecp5")
    ap.add_argument("--pnr", action="store_true", help="also place and route (ECP5-85F; iCE40 UP5K where it fits)")
    ap.add_argument("--pnr-timeout", type=float, default=1800.0,
                    help="stop nextpnr after this many seconds (CNV's routing on the ECP5-85F does not converge)")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simulator", default=None, help="amaranth or verilator (default: by network size)")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--rtlil", action="store_true", help="synthesize from Amaranth's RTLIL instead of the Verilog")
    ap.add_argument("--synth-options", default=None,
                    help="options of synth_<family> instead of bnn2hw.synth.SYNTH_OPTIONS (e.g. \"-nowidelut\")")
    ap.add_argument("--json", type=Path, default=None, help="merge the records into this file")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None,
                    help="write the table here, between the suite's markers if the file has them (docs/benchmarks.md "
                         "does); default: the --json path with .md")
    ap.add_argument("--table-only", action="store_true", help="write the table from --json, run nothing")
    args = ap.parse_args()
    markdown = args.markdown or (args.json.with_suffix(".md") if args.json else None)
    if args.table_only:
        if not (args.json and args.json.is_file()):
            ap.error("--table-only needs --json naming an existing record file")
        write_table(markdown, markdown_table(json.loads(args.json.read_text())))
        return 0
    with tempfile.TemporaryDirectory(prefix="bnn2hw-finn-") as scratch:
        work = args.work or Path(scratch)
        for name in args.networks.split(","):
            rec = run_network_suite(name, args.families.split(","), args.pnr, args.frames, work / name, args.seed,
                                    args.simulator, args.no_sim, args.pnr_timeout, args.rtlil,
                                    args.synth_options)
            # Read the file again just before writing: runs of other networks (other processes) may have
            # written it meanwhile, and a family measured before but not in this run keeps its record.
            records = json.loads(args.json.read_text()).get("networks", {}) if args.json and args.json.is_file() else {}
            old = records.get(name, {})
            rec["families"] = {**old.get("families", {}), **rec["families"]}
            rec["ratios_vs_finn"] = ratios(rec)
            records[name] = rec
            if rec["ratios_vs_finn"]:
                print(f"   vs FINN ({FINN_REFERENCE[name]['source']}): {rec['ratios_vs_finn']}", flush=True)
            if args.json:
                doc = {"finn_reference": FINN_REFERENCE, "networks": records}
                args.json.write_text(json.dumps(doc, indent=2) + "\n")
                write_table(markdown, markdown_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
