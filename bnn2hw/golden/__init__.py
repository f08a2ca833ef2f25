"""Bit-exact numpy golden model of folded IR graphs."""
from .accumulate import layer_accumulators
from .execute import GoldenResult, LayerTrace, channel_last, check_inputs, raw_scores, run
from .packing import bits_to_int, int_to_bits, pack_bits, pack_fields, unpack_bits, unpack_fields

__all__ = ["run", "check_inputs", "channel_last", "GoldenResult", "LayerTrace", "layer_accumulators", "raw_scores",
           "pack_bits", "unpack_bits", "bits_to_int", "int_to_bits", "pack_fields", "unpack_fields"]
