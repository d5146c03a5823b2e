"""``python -m agentkeel`` is the ``keel`` command."""

from agentkeel.cli import main

main()
