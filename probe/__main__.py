"""Allow ``python -m probe`` where the console script is not on PATH."""

from probe.cli import main

raise SystemExit(main())
