"""Simulation harnesses: Amaranth's simulator here, cocotb (Icarus, Verilator) in sim.cocotb_*."""
