"""``python -m api``: the ``geotarget`` command, for environments without the console script on PATH."""

from api.launcher import main

main()
