"""Simulation harnesses: Amaranth's simulator (amaranth_sim), cocotb on Icarus and Verilator
(cocotb_runner + cocotb_bench), simulator discovery (tools) and one entry point for all (run).
The stream test kit behind them: streams (Amaranth), cocotb_streams (cocotb) and the idle-gap and
back-pressure patterns both share (patterns)."""
