"""The ``geotarget`` command's entry point: ``serve`` and ``demo`` are launched with only what launching needs
(``api.cli_serve``), every other command with all of them (``api.cli``)."""

from __future__ import annotations

import sys

import typer


def main() -> None:
    if sys.argv[1:2] in (["serve"], ["demo"]):
        from api.cli_serve import demo_command, serve

        launcher = typer.Typer(help="geotarget: location-aware offers around merchants' stores.")
        launcher.command()(serve)
        launcher.command("demo")(demo_command)
        launcher(prog_name="geotarget")
    else:
        from api.cli import app

        app(prog_name="geotarget")
