"""PE array: PE lanes of SIMD-wide XNOR-popcount (binary input) or ±pixel sums (multi-bit input).

Purely combinational: ``partial`` follows ``x`` and ``w`` in the same cycle (latency 0).
Resources: PE adder trees of SIMD inputs (log2(SIMD) levels); a pixel array shares one Σx tree.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PEArray", "tree_sum", "popcount", "resize", "POPCOUNT_CHUNK"]


def tree_sum(terms, m: Module | None = None, name: str = "sum", levels_per_stage: int = 4):
    """Balanced adder tree (log depth, widths grow by one bit per level).

    With a module ``m``, every ``levels_per_stage`` levels the partial sums are named combinational
    signals. That changes no logic, but keeps each expression small: Amaranth infers shapes by walking
    whole expression trees, which would otherwise cost quadratic time on wide layers.
    """
    terms = list(terms)
    level = 0
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        level += 1
        if m is not None and level % levels_per_stage == 0 and len(terms) > 1:
            named = []
            for i, t in enumerate(terms):
                sig = Signal(t.shape(), name=f"{name}_l{level}_{i}")
                m.d.comb += sig.eq(t)
                named.append(sig)
            terms = named
    return terms[0]


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


def popcount(value, m: Module | None = None, name: str = "popcount", chunk: int = POPCOUNT_CHUNK):
    """Number of 1 bits of ``value``: ``chunk``-bit pieces counted by constant lookup tables (each a
    chunk:log2(chunk+1) compressor that fits a LUT per output bit), then a balanced adder tree."""
    counts = []
    for start in range(0, len(value), chunk):
        piece = value[start:start + chunk]
        width = len(piece).bit_length()
        if len(piece) == 1:
            counts.append(piece)
        else:
            table = Array(Const(bin(i).count("1"), width) for i in range(1 << len(piece)))
            counts.append(table[piece])
    return tree_sum(counts, m, name)


class PEArray(wiring.Component):
    """Members: ``x`` (SIMD lanes of ``pixel_bits`` or 1 bit), ``w`` (PE × SIMD weight bits, PE-major),
    ``last_word`` (the current word is the last of the vector: lanes past ``n_in`` are padding) and
    ``partial`` (PE fields of ``field_width`` bits, two's complement for pixel inputs).

    Binary input: partial_j = popcount(XNOR(w_j, x)); padded lanes have w = 1, x = 0 and add 0.
    Pixel input: partial_j = Σ_k ±(2x_k - D) over valid lanes, computed as 4·P - 2·Q - D·(2·C - V) with
    P = Σ x_k where w_jk = 1, Q = Σ x_k (shared), C = #valid lanes with w_jk = 1, V = #valid lanes.
    """

    def __init__(self, pe: int, simd: int, pixel_bits: int, tail: int, field_width: int):
        self._pe, self._simd, self._pixel_bits, self._tail = pe, simd, pixel_bits, tail
        self._field_width = field_width
        super().__init__({
            "x": In(simd * (pixel_bits or 1)),
            "w": In(pe * simd),
            "last_word": In(1),
            "partial": Out(pe * field_width),
        })

    def elaborate(self, platform):
        m = Module()
        pe, simd, tail = self._pe, self._simd, self._tail
        fields = []
        if self._pixel_bits:
            lw = self._pixel_bits
            d = (1 << lw) - 1
            pixels = [self.x[k * lw:(k + 1) * lw] for k in range(simd)]
            valid = [Const(1) if k < tail else ~self.last_word for k in range(simd)]
            # Shared by every PE, so computed once into named signals.
            q_sum = Signal(range(simd * d + 1), name="q_sum")
            m.d.comb += q_sum.eq(tree_sum(pixels, m, "q_sum"))   # padding lanes hold 0 in the input buffer
            n_valid = Signal(range(simd + 1), name="n_valid")
            m.d.comb += n_valid.eq(Mux(self.last_word, tail, simd) if tail < simd else simd)
            for j in range(pe):
                w = self.w[j * simd:(j + 1) * simd]
                p_sum = tree_sum((Mux(w[k], pixels[k], 0) for k in range(simd)), m, f"p_sum{j}")
                c_ones = popcount(w & Cat(*valid), m, f"c_ones{j}")
                value = (4 * p_sum - 2 * q_sum - d * (2 * c_ones - n_valid)).as_signed()
                fields.append(resize(value, self._field_width, signed_value=True))
        else:
            for j in range(pe):
                w = self.w[j * simd:(j + 1) * simd]
                fields.append(resize(popcount(~(w ^ self.x), m, f"popcount{j}"), self._field_width))
        m.d.comb += self.partial.eq(Cat(*fields))
        return m
