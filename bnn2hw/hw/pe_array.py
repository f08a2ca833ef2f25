"""PE array: PE lanes of SIMD-wide XNOR-popcount (binary input), ±pixel sums (multi-bit input) or
integer dot products of unsigned codes and signed weights (``codes=True``).

Latency: ``stages`` cycles (``MVUParams.pipeline``): 0 is combinational (``partial`` follows ``x`` and
``w`` in the same cycle); with ``stages`` ≥ 1 the result is registered at the output, and every
further stage is a register inside the trees (see :func:`cut_levels`). Every register loads only
while ``en`` is 1, so a stalled MVU holds its whole pipeline; a new (x, w) pair is taken every
cycle (initiation interval 1).

Popcount shapes (binary input), chosen by the target (``MVUParams.lut_inputs``, ``compressor``,
``carry_adders``):

* default (``compressor=False``): ``lut_inputs``-bit pieces of the XNOR word counted by constant
  lookup tables (a 6:3 compressor per piece for ``lut_inputs=6``), then a balanced adder tree. This
  is the generic shape bnn2hw always had, and the fastest to simulate.
* ``compressor=True, lut_inputs=6`` (Xilinx): the XNOR is merged into the first level, one full adder
  of three lanes per pair of 6-input LUTs (sum, carry), then 6:3 compressors (three 6-input LUTs,
  one per output bit) and full adders column by column (a Wallace tree), then one carry-chain adder
  of the last two rows. About 1.5–2 LUT6 per lane with Yosys' abc9 (docs/benchmarks.md).
* ``compressor=True, lut_inputs=4`` (ECP5): XNOR merged into a half adder of two lanes per pair of 4-input LUTs, then
  full adders (3-input LUTs) in a Wallace tree, then one carry-chain adder.
* ``carry_adders=True`` (iCE40): XNOR bits summed by a balanced tree of carry-chain adders (one LUT4
  and one SB_CARRY per sum bit), which iCE40's carry logic makes the smallest.

Codes (``codes=True``, unsigned ``pixel_bits``-bit lanes x, ``weight_precision``-bit weights w):
partial_j = Σ_s w_js · x_s exactly. One bit plane b of the weights selects the lanes of one adder
tree, P_jb = Σ_s Mux(w_js[b], x_s, 0), and partial_j = Σ_b 2^b · P_jb with the most significant
plane negative (two's complement). 1-bit weights are ±1 (bit 1 = +1): partial_j = 2·P_j − Q with
Q = Σ_s x_s shared by the PEs. The trees have SIMD terms, so the pipeline cuts sit at the same
levels as for pixel lanes; the weighted sum of the planes follows the trees (log2 k adder levels).

Resources: PE such trees of SIMD lanes; a pixel array shares one Σx tree among its PEs, and
``stages`` × (PE × partial width) flip-flops of pipeline registers, plus the tree-level registers.
A codes array has PE × k trees of SIMD ``pixel_bits``-bit lanes (k = ``weight_precision``; one shared
Σx tree more for k = 1).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PEArray", "tree_sum", "popcount", "resize", "POPCOUNT_CHUNK", "lut_table", "compressor_popcount",
           "cut_levels", "pipeline_stages", "compressor_levels", "tree_levels", "tree_depth"]


class _Stager:
    """Pipeline registers at chosen tree levels: ``at(level, terms)`` registers the terms (loaded while
    ``en``) when ``level`` is a cut, else returns them unchanged."""

    def __init__(self, m: Module | None, en, cuts=()):
        self.m, self.en, self.cuts = m, en, frozenset(cuts)

    def at(self, level: int, terms: list, name: str) -> list:
        if level not in self.cuts or self.m is None:
            return terms
        out = []
        for i, t in enumerate(terms):
            reg = Signal(t.shape(), name=f"{name}_p{level}_{i}", reset_less=True)   # data beside a valid flag
            with self.m.If(self.en):
                self.m.d.sync += reg.eq(t)
            out.append(reg)
        return out


_NO_STAGES = _Stager(None, None)


def tree_sum(terms, m: Module | None = None, name: str = "sum", levels_per_stage: int = 4, stager=None,
             first_level: int = 1):
    """Balanced adder tree (log depth, widths grow by one bit per level).

    With a module ``m``, every ``levels_per_stage`` levels the partial sums are named combinational
    signals. That changes no logic, but keeps each expression small: Amaranth infers shapes by walking
    whole expression trees, which would otherwise cost quadratic time on wide layers. ``stager``
    (internal) registers the sums after chosen levels (pipeline cuts); the first adder level is
    numbered ``first_level``."""
    stager = stager or _NO_STAGES
    terms = list(terms)
    level = first_level - 1
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        level += 1
        if level in stager.cuts:
            terms = stager.at(level, terms, name)
        elif m is not None and level % levels_per_stage == 0 and len(terms) > 1:
            named = []
            for i, t in enumerate(terms):
                sig = Signal(t.shape(), name=f"{name}_l{level}_{i}")
                m.d.comb += sig.eq(t)
                named.append(sig)
            terms = named
    return terms[0]


def tree_depth(n: int) -> int:
    """Adder levels of :func:`tree_sum` over ``n`` terms."""
    return max(0, (n - 1).bit_length())


def resize(value, width: int, signed_value: bool = False):
    """``value`` truncated or extended (sign- or zero-) to exactly ``width`` bits; slicing alone never widens."""
    if len(value) >= width:
        return value[:width]
    if signed_value:
        # Amaranth sign-extends operands of an addition; replicating value[-1] instead would copy the
        # whole expression once per extension bit into the simulator's code.
        return (value.as_signed() + Const(0, signed(width)))[:width]
    return Cat(value, Const(0, width - len(value)))


#: Bits counted by one lookup table in :func:`popcount`: one 6-input LUT per output bit on most FPGAs.
POPCOUNT_CHUNK = 6


def popcount(value, m: Module | None = None, name: str = "popcount", chunk: int = POPCOUNT_CHUNK, stager=None):
    """Number of 1 bits of ``value``: ``chunk``-bit pieces counted by constant lookup tables (each a
    chunk:log2(chunk+1) compressor that fits a LUT per output bit), then a balanced adder tree.
    Pipeline cuts (``stager``): level 1 is the lookup level, then the adder levels."""
    counts = []
    for start in range(0, len(value), chunk):
        piece = value[start:start + chunk]
        width = len(piece).bit_length()
        if len(piece) == 1:
            counts.append(piece)
        else:
            table = Array(Const(bin(i).count("1"), width) for i in range(1 << len(piece)))
            counts.append(table[piece])
    if stager is not None and 1 in stager.cuts:
        counts = stager.at(1, counts, name)
    return tree_sum(counts, m, name, stager=stager, first_level=2)


def lut_table(inputs: list, fn, width: int):
    """A ``width``-bit function of up to six 1-bit ``inputs`` as one constant truth table indexed by them
    (input 0 is the index LSB): one LUT per output bit after synthesis. ``fn(bits) -> int``."""
    n = len(inputs)
    table = 0
    for idx in range(1 << n):
        table |= (fn(tuple((idx >> k) & 1 for k in range(n))) & ((1 << width) - 1)) << (idx * width)
    return Const(table, width << n).word_select(Cat(*inputs), width)


def _xnor_count(bits) -> int:
    """bits = (w0, x0, w1, x1, …): how many lanes have w == x."""
    return sum(1 - (bits[2 * t] ^ bits[2 * t + 1]) for t in range(len(bits) // 2))


def compressor_levels(lanes: int, lut_inputs: int) -> int:
    """Tree levels of :func:`compressor_popcount` before its final adder (first level included)."""
    per = 3 if lut_inputs >= 6 else 2
    heights = [0, 0]
    heights[0] = lanes // per + (1 if lanes % per else 0)
    heights[1] = lanes // per + (1 if lanes % per >= 2 else 0)
    levels = 1
    while max(heights) > 2:
        heights = _reduce_heights(heights, lut_inputs)
        levels += 1
    return levels


def _plan_column(n: int, lut_inputs: int) -> tuple[int, int]:
    """(6:3 compressors, 3:2 full adders) for a column of ``n`` bits in one Wallace stage."""
    big = n // 6 if lut_inputs >= 6 else 0
    rest = n - 6 * big
    return big, rest // 3


def _reduce_heights(heights: list[int], lut_inputs: int) -> list[int]:
    out = [0] * (len(heights) + 3)
    for k, n in enumerate(heights):
        big, fa = _plan_column(n, lut_inputs)
        for b in range(3):
            out[k + b] += big
        out[k] += fa
        out[k + 1] += fa
        out[k] += n - 6 * big - 3 * fa
    while out and out[-1] == 0:
        out.pop()
    return out


def _bundle(m: Module, parts: list, name: str) -> list:
    """Name a list of multi-bit values as one signal (one per tree level, which keeps Amaranth's
    simulator fast: it evaluates one function per signal) and return it split back into parts."""
    if not parts:
        return []
    sig = Signal(sum(len(v) for v in parts), name=name)
    m.d.comb += sig.eq(Cat(*parts))
    out, pos = [], 0
    for v in parts:
        out.append(sig[pos:pos + len(v)])
        pos += len(v)
    return out


def compressor_popcount(w, x, m: Module, name: str, lut_inputs: int = 6, stager=None):
    """popcount(XNOR(w, x)) as a LUT-shaped compressor tree (module docstring); ``stager`` places
    pipeline registers after chosen levels (level 1 = the XNOR level)."""
    stager = stager or _NO_STAGES
    n = len(w)
    per = 3 if lut_inputs >= 6 else 2
    heap: list[list] = [[], []]
    pieces = []
    for i in range(0, n, per):
        group = list(range(i, min(n, i + per)))
        if len(group) == 1:
            heap[0].append(~(w[group[0]] ^ x[group[0]]))
        else:
            pieces.append(lut_table([b for t in group for b in (w[t], x[t])], _xnor_count, 2))
    for piece in _bundle(m, pieces, f"{name}_x"):
        heap[0].append(piece[0])
        heap[1].append(piece[1])
    level = 1
    heap = _stage_heap(stager, level, heap, name)
    while max(len(col) for col in heap) > 2:
        new: list[list] = [[] for _ in range(len(heap) + 3)]
        parts, places = [], []          # compressor outputs of this level and the columns they feed
        for k, col in enumerate(heap):
            big, fa = _plan_column(len(col), lut_inputs)
            i = 0
            for _ in range(big):
                parts.append(lut_table(col[i:i + 6], sum, 3))
                places.append(k)
                i += 6
            for _ in range(fa):
                parts.append(lut_table(col[i:i + 3], sum, 2))
                places.append(k)
                i += 3
            new[k].extend(col[i:])
        for k, part in zip(places, _bundle(m, parts, f"{name}_c{level}")):
            for b in range(len(part)):
                new[k + b].append(part[b])
        while new and not new[-1]:
            new.pop()
        level += 1
        heap = _stage_heap(stager, level, new, name)
    rows = [Cat(*[col[r] if len(col) > r else Const(0, 1) for col in heap]) for r in range(2)]
    return rows[0] + rows[1]


def _stage_heap(stager, level: int, heap: list[list], name: str) -> list[list]:
    if level not in stager.cuts:
        return heap
    flat = [b for col in heap for b in col]
    regs = stager.at(level, [Cat(*flat)], name)[0]
    out, pos = [], 0
    for col in heap:
        out.append([regs[pos + i] for i in range(len(col))])
        pos += len(col)
    return out


def combine_levels(pixel_bits: int, codes: bool = False, weight_precision: int = 1) -> int:
    """Adder levels after the lane trees that combine their sums into a PE's partial sum: pixel lanes
    4·P − 2·Q, then − 2·D·C, then + D·V (three); codes 2·P − Q (±1 weights), or the weighted sum of
    the k bit planes, the top one negative (1 + ⌈log2(k − 1)⌉); none for binary lanes."""
    if codes:
        return 1 + tree_depth(max(1, weight_precision - 1))
    return 3 if pixel_bits else 0


def tree_levels(simd: int, pixel_bits: int, lut_inputs: int, compressor: bool, carry_adders: bool,
                codes: bool = False, weight_precision: int = 1) -> int:
    """Levels of a PE's tree before its output (where :func:`cut_levels` may put pipeline registers):
    an adder tree for pixel or code lanes (and the adder levels that combine its sums,
    :func:`combine_levels`) and carry-adder popcounts, the Wallace tree of
    :func:`compressor_popcount`, or lookup pieces and an adder tree (the generic shape)."""
    if pixel_bits or codes:
        return tree_depth(simd) + combine_levels(pixel_bits, codes, weight_precision)
    if carry_adders:
        return tree_depth(simd)
    if compressor:
        return compressor_levels(simd, lut_inputs)
    return 1 + tree_depth(-(-simd // lut_inputs))


def pipeline_stages(levels: int, every: int) -> int:
    """Stages of a PE array whose trees of ``levels`` levels get a register every ``every`` levels:
    the output register and one after levels every, 2·every, … below ``levels``."""
    return 1 + max(0, levels - 1) // every


def cut_levels(stages: int, levels: int, every: int = 0) -> tuple[set[int], int]:
    """Where a PE array with ``stages`` pipeline stages puts its registers, for trees of ``levels``
    levels: (tree levels cut, registers left at the output).

    ``every`` > 0 (the target's levels per stage): after levels every, 2·every, … below ``levels``,
    then the output register, so no stage holds more than ``every`` tree levels; ``stages`` beyond
    :func:`pipeline_stages` stack at the output. ``every`` = 0: one stage is the output register; the
    second goes after level 1 (the XNOR / first adder level, which also keeps synthesis from
    restructuring across it); more are spread evenly over the remaining levels. Stages beyond the
    levels stack at the output."""
    if stages <= 0:
        return set(), 0
    if every > 0:
        cuts = {k * every for k in range(1, stages) if k * every < levels}
        return cuts, stages - len(cuts)
    internal = stages - 1
    cuts: set[int] = set()
    if internal and levels >= 2:
        cuts.add(1)
        rest = internal - 1
        span = levels - 2                       # levels 2 .. levels-1 may still be cut
        for k in range(1, rest + 1):
            if span <= 0:
                break
            cuts.add(1 + max(1, round(k * (span + 1) / (rest + 1))))
    return cuts, stages - len(cuts)


class PEArray(wiring.Component):
    """Members: ``x`` (SIMD lanes of ``pixel_bits`` or 1 bit), ``w`` (PE × SIMD weight bits, PE-major),
    ``last_word`` (the current word is the last of the vector: lanes past ``n_in`` are padding),
    ``en`` (pipeline registers load; only with ``stages`` ≥ 1) and ``partial`` (PE fields of
    ``field_width`` bits, two's complement for pixel inputs), ``stages`` cycles after its inputs.

    Binary input: partial_j = popcount(XNOR(w_j, x)); padded lanes have w = 1, x = 0 and add 0.
    Pixel input: partial_j = Σ_k ±(2x_k - D) over valid lanes, computed as 4·P - 2·Q - D·(2·C - V) with
    P = Σ x_k where w_jk = 1, Q = Σ x_k (shared), C = #valid lanes with w_jk = 1, V = #valid lanes.
    Codes (``codes=True``, ``pixel_bits`` ≥ 1): ``w`` is PE × SIMD fields of ``weight_precision`` bits
    (lane (j, s) in field j·SIMD + s; 1 bit: bit 1 = +1, bit 0 = −1; more: two's complement) and
    partial_j = Σ_s w_js · x_s (two's complement). Padded lanes must carry x = 0 (they then add 0
    whatever their weight); ``tail`` and ``last_word`` are not used.
    """

    def __init__(self, pe: int, simd: int, pixel_bits: int, tail: int, field_width: int, *,
                 lut_inputs: int = 6, compressor: bool = False, carry_adders: bool = False, stages: int = 0,
                 codes: bool = False, weight_precision: int = 1, levels_per_stage: int = 0):
        if codes and not 1 <= pixel_bits <= 8:
            raise ValueError(f"a codes PE array needs pixel_bits in 1..8, not {pixel_bits!r}")
        if not isinstance(weight_precision, int) or not 1 <= weight_precision <= 8:
            raise ValueError(f"weight_precision must be an integer in 1..8, not {weight_precision!r}")
        if weight_precision > 1 and not codes:
            raise ValueError("weight_precision > 1 needs codes=True")
        self._pe, self._simd, self._pixel_bits, self._tail = pe, simd, pixel_bits, tail
        self._field_width = field_width
        self._lut_inputs, self._carry_adders, self._stages = lut_inputs, carry_adders, stages
        self._compressor = compressor and not carry_adders
        self._codes, self._weight_precision = bool(codes), weight_precision
        self._every = levels_per_stage
        super().__init__({
            "x": In(simd * (pixel_bits or 1)),
            "w": In(pe * simd * weight_precision),
            "last_word": In(1),
            "en": In(1, init=1),
            "partial": Out(pe * field_width),
        })

    @property
    def levels(self) -> int:
        """Tree levels before the output (where internal pipeline cuts may go)."""
        return tree_levels(self._simd, self._pixel_bits, self._lut_inputs, self._compressor, self._carry_adders,
                           self._codes, self._weight_precision)

    def elaborate(self, platform):
        m = Module()
        pe, simd, tail = self._pe, self._simd, self._tail
        cuts, out_regs = cut_levels(self._stages, self.levels, self._every)
        stager = _Stager(m, self.en, cuts)
        fields = []
        if self._codes:
            fields = self._code_fields(m, stager)
        elif self._pixel_bits:
            lw = self._pixel_bits
            d = (1 << lw) - 1
            pixels = [self.x[k * lw:(k + 1) * lw] for k in range(simd)]
            valid = [Const(1) if k < tail else ~self.last_word for k in range(simd)]
            # Shared by every PE, so computed once into named signals.
            q_sum = Signal(range(simd * d + 1), name="q_sum")
            m.d.comb += q_sum.eq(tree_sum(pixels, m, "q_sum", stager=stager))   # padding lanes hold 0
            n_valid = Signal(range(simd + 1), name="n_valid")
            m.d.comb += n_valid.eq(Mux(self.last_word, tail, simd) if tail < simd else simd)
            # D·V, one of two constants (V = valid lanes), meets the sums in the last combine level:
            # delay the last-word flag by the cuts before it. D·(2·C − V) is shifts and adds, no
            # multiplier (a constant product Yosys put in an ECP5 DSP: 3.9 ns of a 12.4 ns path).
            depth = tree_depth(simd)
            dv = Signal(range(d * simd + 1), name="dv")
            m.d.comb += dv.eq(Mux(self.last_word, d * tail, d * simd) if tail < simd else d * simd)
            for level in sorted(c for c in cuts if c < depth + 3):
                (dv,) = stager.at(level, [dv], "dv")
            q2 = (q_sum << 1)
            for j in range(pe):
                w = self.w[j * simd:(j + 1) * simd]
                p_sum = tree_sum((Mux(w[k], pixels[k], 0) for k in range(simd)), m, f"p_sum{j}", stager=stager)
                masked = w & Cat(*valid)
                c_ones = (tree_sum([masked[k] for k in range(simd)], m, f"c_ones{j}", stager=stager) if cuts
                          else popcount(masked, m, f"c_ones{j}"))
                # 4·P − 2·Q − D·(2·C − V) = ((4·P − 2·Q) − (2·D·C)) + D·V, one adder level each
                a, dc2 = stager.at(depth + 1, [((p_sum << 2) - q2).as_signed(),
                                               ((c_ones << (lw + 1)) - (c_ones << 1)).as_signed()], f"comb1_{j}")
                (e,) = stager.at(depth + 2, [(a - dc2).as_signed()], f"comb2_{j}")
                (value,) = stager.at(depth + 3, [(e + dv).as_signed()], f"comb3_{j}")
                fields.append(resize(value, self._field_width, signed_value=True))
        else:
            for j in range(pe):
                w = self.w[j * simd:(j + 1) * simd]
                if self._carry_adders:
                    xnor = ~(w ^ self.x)
                    count = tree_sum([xnor[k] for k in range(simd)], m, f"popcount{j}", stager=stager)
                elif self._compressor:
                    count = compressor_popcount(w, self.x, m, f"popcount{j}", self._lut_inputs, stager)
                else:
                    count = popcount(~(w ^ self.x), m, f"popcount{j}", self._lut_inputs, stager)
                fields.append(resize(count, self._field_width))
        value = Cat(*fields)
        for k in range(out_regs):
            reg = Signal(len(value), name=f"partial_p{k}", reset_less=True)
            with m.If(self.en):
                m.d.sync += reg.eq(value)
            value = reg
        m.d.comb += self.partial.eq(value)
        return m

    def _code_fields(self, m: Module, stager: _Stager) -> list:
        """partial_j = Σ_s w_js · x_s per PE lane (class docstring), resized to ``field_width`` bits."""
        pe, simd, lw, k = self._pe, self._simd, self._pixel_bits, self._weight_precision
        codes = [self.x[s * lw:(s + 1) * lw] for s in range(simd)]
        top = simd * ((1 << lw) - 1)              # largest plane sum
        if k == 1:
            # Shared by every PE, so computed once into a named signal; padding lanes hold 0.
            q_sum = Signal(range(top + 1), name="q_sum")
            m.d.comb += q_sum.eq(tree_sum(codes, m, "q_sum", stager=stager))
        fields = []
        for j in range(pe):
            w = self.w[j * simd * k:(j + 1) * simd * k]
            planes = []
            for b in range(k):
                plane = tree_sum([Mux(w[s * k + b], codes[s], 0) for s in range(simd)], m, f"p_sum{j}_{b}",
                                 stager=stager)
                named = Signal(range(top + 1), name=f"plane{j}_{b}")
                m.d.comb += named.eq(plane)
                planes.append(named)
            depth = tree_depth(simd)
            if k == 1:
                (value,) = stager.at(depth + 1, [(2 * planes[0] - q_sum).as_signed()], f"comb{j}")
            else:
                # the planes' weighted sum continues the tree's levels (pipeline cuts apply to it)
                positive = tree_sum([planes[b] << b for b in range(k - 1)], stager=stager, first_level=depth + 1)
                top_plane = planes[k - 1] << (k - 1)
                for level in range(depth + 1, depth + 1 + tree_depth(k - 1)):
                    (top_plane,) = stager.at(level, [top_plane], f"top_plane{j}")
                (value,) = stager.at(depth + 1 + tree_depth(k - 1), [(positive - top_plane).as_signed()], f"comb{j}")
            fields.append(resize(value, self._field_width, signed_value=True))
        return fields
