"""Lua scripts, assembled once from the libraries in ``lua/`` (each defines one local function) and an entry."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_LUA = Path(__file__).parent / "lua"


@cache
def library(name: str) -> str:
    return (_LUA / f"{name}.lua").read_text()


def script(*libraries: str, entry: str) -> str:
    """The libraries' functions, then ``entry``: a file of ``lua/`` (``serve``) or one line of Lua."""
    body = library(entry) if (_LUA / f"{entry}.lua").exists() else entry
    return "\n".join([*(library(name) for name in libraries), body])
