"""``python -m orchestrator`` is the ``flotilla`` command."""

from orchestrator.cli import main

raise SystemExit(main())
