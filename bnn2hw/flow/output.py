"""The output directory: written whole into a staging sibling, then moved into place, or not at all.

A build writes everything into a hidden temporary sibling of ``--out`` and renames it into place at
the end, so a failure leaves no half-written output. An existing directory is replaced only if bnn2hw
wrote it (its report.json says so), and only after the new one is complete: the old one is moved
aside first and put back if the move fails. A symbolic link, a read-only file system and a missing
permission each stop the build with one sentence (:class:`~bnn2hw.errors.OutputError`) before any
work, and nothing of the user's is removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError
from ..report import GENERATOR as MARKER

__all__ = ["MARKER", "prepare_output", "staging_directory", "commit_output", "output_errors"]

_REASONS = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}


def _sentence(out_dir: Path, e: OSError) -> str:
    reason = _REASONS.get(e.errno, e.strerror or str(e))
    where = f" ('{e.filename}')" if e.filename and Path(e.filename) != out_dir else ""
    return (f"cannot write the output directory '{out_dir}': {reason}{where}; choose an --out on a writable "
            "disk, or fix the directory's permissions")


@contextmanager
def output_errors(out_dir: Path):
    """Turn the operating system's refusals to write (read-only, permission, full disk) into one sentence."""
    try:
        yield
    except OSError as e:
        if e.errno in _REASONS or isinstance(e, PermissionError):
            raise OutputError(_sentence(out_dir, e)) from None
        raise


def _is_ours(out_dir: Path) -> bool:
    report = out_dir / "report.json"
    try:
        return report.is_file() and json.loads(report.read_text()).get("generator") == MARKER
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
        return False


def prepare_output(out_dir: Path) -> None:
    """Refuse, before any work, an ``out_dir`` that bnn2hw must not or cannot write."""
    if out_dir.is_symlink():
        raise OutputError(f"output directory '{out_dir}' is a symbolic link; bnn2hw replaces its output "
                          "directory as a whole and never follows a link to do so: give --out the real path")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputError(f"output directory '{out_dir}' exists and is a file; choose another --out")
        if not _is_ours(out_dir):
            raise OutputError(f"output directory '{out_dir}' exists and was not written by bnn2hw; "
                              "choose another --out or remove it yourself")
    parent = out_dir.parent
    with output_errors(out_dir):
        parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(_sentence(out_dir, PermissionError(errno.EACCES, "permission denied", str(parent))))


def staging_directory(out_dir: Path) -> Path:
    """A new hidden sibling of ``out_dir`` to write the output into."""
    with output_errors(out_dir):
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def commit_output(staging: Path, out_dir: Path) -> None:
    """Move the finished ``staging`` directory to ``out_dir``, replacing an earlier bnn2hw output."""
    with output_errors(out_dir):
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "out")
        try:
            os.replace(staging, out_dir)
        except OSError:
            if old is not None:
                os.replace(old / "out", out_dir)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
