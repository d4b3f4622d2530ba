"""``python -m api``: the ``geotarget`` command, for environments without the console script on PATH."""

from api.cli import app

app(prog_name="geotarget")
