"""Allow ``python -m probe`` where the console script is not on PATH."""

from probe.cli import entry

# Guarded: the collector's validation workers (multiprocessing "spawn") import the main
# module under another name, and must not run the command again.
if __name__ == "__main__":
    raise SystemExit(entry())
