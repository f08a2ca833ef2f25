"""Board builds: bitstreams for amaranth-boards platforms with the open tools from PyPI."""

from .boards import BOARDS, Board, get_board

__all__ = ["BOARDS", "Board", "get_board"]
