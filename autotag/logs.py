"""Log lines of autotag's own processes: the CLI, background trainers, the pre-warmed trainer.

One setup for all of them, so a trainer's train.log reads the same whether it was started
from a terminal, by the dashboard or forked from the pre-warmed trainer.
"""

from __future__ import annotations

import logging
import sys
import warnings


def setup_logging() -> None:
    """autotag's own lines to stderr; Lightning's start-up chatter only as warnings."""
    ours = logging.getLogger("autotag")
    for old in [h for h in ours.handlers if getattr(h, "autotag_cli", False)]:
        ours.removeHandler(old)  # main() ran before in this process (a warm-forked trainer, tests)
    handler = logging.StreamHandler(sys.stderr)
    handler.autotag_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
