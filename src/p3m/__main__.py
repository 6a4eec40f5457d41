"""``python -m p3m <task> ...``: the ``p3m`` command."""

from p3m.cli import main

main()
