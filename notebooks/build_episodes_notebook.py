"""Writes notebooks/episodes.ipynb.  The cells live here so that changes to them are reviewed as
code; run from the repository root: python notebooks/build_episodes_notebook.py"""

import shutil
import subprocess

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# Block episodes per site and network\n\n"
        "Loads Kuzot verdicts as pandas DataFrames through the `analysis` API, finds block *episodes* "
        "(durations as intervals), correlates them with blocking orders and draws the charts.\n\n"
        "Set `KUZOT_DB` to a database URL (a volunteer's `sqlite:///…/kuzot.db` or the collector's "
        "`postgresql+psycopg://…`) to use real data. Without it the notebook generates a **synthetic** "
        "history (three made-up networks replaying the Azattyk order) with known truth; the test suite "
        "runs it that way."
    ),
    new_code_cell(
        "import os\n"
        "import sys\n"
        "from pathlib import Path\n\n"
        "ROOT = Path(os.environ.get('KUZOT_ROOT', '..')).resolve()\n"
        "sys.path.insert(0, str(ROOT))  # works from a clone without installing"
    ),
    new_code_cell(
        "from datetime import timedelta\n\n"
        "import pandas as pd\n\n"
        "from analysis import charts\n"
        "from analysis.bundled import orders_file\n"
        "from analysis.data import load_verdicts\n"
        "from analysis.episodes import find_episodes\n"
        "from analysis.orders import (\n"
        "    correlate,\n"
        "    load_orders,\n"
        "    orders_frame,\n"
        "    parse_orders,\n"
        "    unexplained_episodes,\n"
        ")\n\n"
        "%matplotlib inline\n"
        "DB = os.environ.get('KUZOT_DB')\n"
        "DOMAIN = os.environ.get('KUZOT_DOMAIN', 'azattyk.org')\n"
        "pd.set_option('display.width', 160)"
    ),
    new_markdown_cell(
        "## Verdicts\n"
        "One row per measurement: `status` (accessible, blocked, down, probe_offline, inconclusive), "
        "the `blocking` method, the rule that decided it, and the observations behind it."
    ),
    new_code_cell(
        "if DB:\n"
        "    verdicts = load_verdicts(DB)\n"
        "    orders = load_orders(orders_file())\n"
        "else:\n"
        "    from analysis.fingerprints import load_fingerprints\n"
        "    from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history\n"
        "    from analysis.verdicts import judge_all, verdicts_frame\n\n"
        "    history = example_history(every=timedelta(hours=12))\n"
        "    verdicts = verdicts_frame(judge_all(history, fingerprints=load_fingerprints()))\n"
        "    orders = orders_frame(parse_orders(EXAMPLE_ORDERS_CSV))\n"
        "verdicts.groupby(['domain', 'status']).size().unstack(fill_value=0)"
    ),
    new_markdown_cell(
        "## Episodes\n"
        "`duration_days_min` spans the blocked measurements only; `duration_days_max` reaches to the "
        "accessible measurements around them. An empty maximum means the start or the end is unknown "
        "(for instance an ongoing block)."
    ),
    new_code_cell(
        "episodes = find_episodes(verdicts)\n"
        "episodes[['domain', 'probe_asn', 'blocking', 'first_blocked', 'last_blocked',\n"
        "          'duration_days_min', 'duration_days_max',\n"
        "          'measurements_blocked', 'measurements_total', 'ongoing']]"
    ),
    new_markdown_cell("## Orders and their enforcement"),
    new_code_cell(
        "correlation = correlate(orders, episodes, verdicts)\n"
        "correlation[['order_id', 'domain', 'probe_asn', 'status', 'enforcement_lag_days',\n"
        "             'blocked_days_min', 'blocked_days_max',\n"
        "             'days_past_order_end', 'days_after_withdrawal']]"
    ),
    new_markdown_cell("Blocks that no order explains are news too:"),
    new_code_cell(
        "unexplained = unexplained_episodes(orders, episodes)\n"
        "unexplained[['domain', 'probe_asn', 'blocking', 'first_blocked', 'ongoing']]"
    ),
    new_markdown_cell("## Charts"),
    new_code_cell("fig = charts.timeline(DOMAIN, episodes, verdicts, orders)\nfig"),
    new_code_cell("fig = charts.heatmap(verdicts, DOMAIN)\nfig"),
]
nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbformat.write(nb, "notebooks/episodes.ipynb")

# The cells are written with single quotes to sit inside this file's strings; the notebook
# itself follows the project's format, so that `ruff format --check` passes on it.
if shutil.which("ruff"):
    subprocess.run(["ruff", "format", "--quiet", "notebooks/episodes.ipynb"], check=True)
