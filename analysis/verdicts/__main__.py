"""``python -m analysis.verdicts [FILE ...]``: rewrite the rule table in ``docs/verdicts.md``.

Run it after changing :mod:`analysis.verdicts.rules`; ``tests/test_verdicts.py`` fails
while the document's table differs from the rules.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.verdicts.rules import with_current_table


def main(argv: list[str]) -> int:
    """Rewrite the rule table of each Markdown file named (default ``docs/verdicts.md``)."""
    for name in argv or ["docs/verdicts.md"]:
        path = Path(name)
        path.write_text(with_current_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
