"""The ``bnn2hw`` command: a thin layer over the library, one module per sub-command (compile,
predict, simulate, train, diagnose, run), sharing console.py.

Every error a user can cause is a :class:`bnn2hw.errors.Bnn2hwError`; it is printed as one line on
stderr with exit code 1 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import Bnn2hwError
from .compile import compile_cmd
from .console import err
from .diagnose import diagnose_cmd
from .predict import predict_cmd
from .run import run_cmd
from .simulate import simulate_cmd
from .train import train_cmd

__all__ = ["main", "cli", "Bnn2hwGroup"]


class Bnn2hwGroup(click.Group):
    """Turns bnn2hw errors into one line and exit code 1, unless --debug was given."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Bnn2hwError as e:
            if ctx.meta.get("bnn2hw.debug"):
                raise
            err.print(f"[bold red]error:[/bold red] {e}", soft_wrap=True)
            sys.exit(1)


@click.group(cls=Bnn2hwGroup)
@click.version_option(__version__, prog_name="bnn2hw")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx, debug):
    """bnn2hw: binary neural networks from PyTorch to bit-exact FPGA hardware."""
    ctx.meta["bnn2hw.debug"] = debug


cli.add_command(compile_cmd)
cli.add_command(predict_cmd)
cli.add_command(simulate_cmd)
cli.add_command(train_cmd)
cli.add_command(diagnose_cmd)
cli.add_command(run_cmd)


def main() -> None:
    cli()
