"""Simulation harnesses: Amaranth's simulator (amaranth_sim), cocotb on Icarus and Verilator
(cocotb_runner + cocotb_bench), simulator discovery (tools) and one entry point for all (run)."""
