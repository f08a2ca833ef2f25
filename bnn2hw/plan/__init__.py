"""The hardware plan: every rule that turns a folded graph into hardware numbers, applied once.

``plan_network(graph, target)`` → :class:`NetworkPlan` (stages in stream order, II, latency), whose
compute layers are :class:`LayerPlan` objects (folds, widths, thresholds in hardware form, ROM images
and styles, cycles). Hardware (codegen), estimates, folding, the fit check and reports read it.
"""
from .layer import LayerPlan, Multiplier
from .network import DECOUPLING_ROWS, NetworkPlan, StagePlan, StreamUnitPlan, plan_network
from .target import ECP5, GENERIC, ICE40_UP5K, ICE40_UP5K_COMPACT, TARGETS, XILINX_7, HardwareTarget, target_for

__all__ = ["LayerPlan", "Multiplier", "NetworkPlan", "StagePlan", "StreamUnitPlan", "plan_network", "DECOUPLING_ROWS",
           "HardwareTarget", "GENERIC", "XILINX_7", "ICE40_UP5K", "ICE40_UP5K_COMPACT", "ECP5", "TARGETS", "target_for"]
