"""The only bridge from the hardware plan to Amaranth: a NetworkPlan's stages → a Network component."""

from __future__ import annotations

from ..hw import Network
from ..ir import Graph
from ..plan import HardwareTarget, NetworkPlan, plan_network

__all__ = ["build_network"]


def build_network(plan: NetworkPlan | Graph, target: HardwareTarget | str | None = None) -> Network:
    """The hardware of a plan (bnn2hw.plan.plan_network), or of a folded graph planned for ``target``
    (a HardwareTarget or target name; None: generic). Targets change structure, never results or the
    initiation interval (latency: ``MVUParams.latency_cycles``)."""
    if isinstance(plan, Graph):
        plan = plan_network(plan, target)
    return Network(list(plan.stages))
