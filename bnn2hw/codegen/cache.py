"""A content-addressed cache of exported Verilog, so that a design is converted once.

Exporting a network runs Amaranth's netlist builder and Yosys' Verilog writer (tens of seconds for
CNV), and one build exports the same network more than once (the output folder, then each RTL
simulation). The Verilog is a pure function of the network's stage parameters (weights and
thresholds included), the top name, the generator's source code, Amaranth's version and the Yosys
that writes the text; the key hashes all of them, so any change to one of them is a miss, never a
stale hit:

* the stages, serialised with :mod:`pickle` (numpy arrays as their raw bytes);
* every ``.py`` file of the bnn2hw package, so that editing any generator invalidates every entry;
* ``amaranth.__version__`` and the Yosys binary Amaranth picks (its class and version).

Entries live in ``$BNN2HW_CACHE_DIR`` (default ``$XDG_CACHE_HOME/bnn2hw/verilog``, else
``~/.cache/bnn2hw/verilog``); ``BNN2HW_CACHE_DIR=off`` turns the cache off. Each entry starts with
the SHA-256 of its text, checked on every read (a damaged entry is a miss); entries are written to a
temporary file and renamed, so concurrent builds never read half a file; the least recently used
entries beyond :data:`MAX_ENTRIES` are removed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import amaranth
from amaranth.back.verilog import find_yosys

__all__ = ["CACHE_ENV", "MAX_ENTRIES", "cache_dir", "design_key", "lookup", "store", "source_digest"]

CACHE_ENV = "BNN2HW_CACHE_DIR"
MAX_ENTRIES = 32
_FORMAT = "bnn2hw-verilog-cache-1"
_PACKAGE = Path(__file__).resolve().parents[1]


def cache_dir() -> Path | None:
    """The cache folder, or None when ``BNN2HW_CACHE_DIR`` is ``off``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("off", "0", "no", "false", "") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:            # no home directory to be found: no cache
            return None
    return Path(base) / "bnn2hw" / "verilog"


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 over the path and bytes of every .py file of the bnn2hw package."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _yosys_identity() -> str:
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    return f"{yosys.__name__} {yosys.version()}"


def design_key(stages, name: str, **options) -> str:
    """The cache key of the Verilog of ``stages`` exported as module ``name`` with ``options``."""
    h = hashlib.sha256()
    for part in (_FORMAT, name, repr(sorted(options.items())), amaranth.__version__, _yosys_identity(),
                 source_digest()):
        h.update(str(part).encode() + b"\0")
    h.update(pickle.dumps(tuple(stages), protocol=4))
    return h.hexdigest()


def _entry(key: str) -> Path | None:
    directory = cache_dir()
    return None if directory is None else directory / f"{key}.v"


def lookup(key: str) -> str | None:
    """The cached text of ``key``, or None (no cache, no entry, or an entry whose checksum fails)."""
    path = _entry(key)
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    digest, _, text = raw.partition(b"\n")
    if hashlib.sha256(text).hexdigest().encode() != digest:
        return None
    try:
        os.utime(path)                      # least recently used goes first
    except OSError:
        pass
    return text.decode()


def store(key: str, text: str) -> None:
    """Keep ``text`` under ``key`` (atomically); a cache that cannot be written is skipped."""
    path = _entry(key)
    if path is None:
        return
    data = text.encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
        os.replace(tmp, path)
        _prune(path.parent)
    except OSError:
        return


def _prune(directory: Path) -> None:
    entries = []
    for p in directory.glob("*.v"):
        try:
            entries.append((p.stat().st_mtime, p))
        except OSError:
            continue
    for _, p in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        try:
            p.unlink()
        except OSError:
            pass
