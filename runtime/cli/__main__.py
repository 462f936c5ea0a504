"""``python -m troupe.runtime.cli``: the ``troupe`` command without its console script."""

from troupe.runtime.cli.main import main

raise SystemExit(main())
