"""``python -m agentkeel.examples`` runs every scenario and prints what happened."""

from agentkeel.examples import main

raise SystemExit(main())
