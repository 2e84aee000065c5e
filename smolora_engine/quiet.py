"""The engine's processes say what happens in their own words: no progress bars from the libraries underneath.

transformers' weight-loading and datasets' map progress bars, and a deprecation warning raised inside
TRL and PEFT that a user can do nothing about, would otherwise fill a run's worker.log, the serve
worker's stderr (which the app shows when it dies) and the console. Warnings and errors still get through.
"""

from __future__ import annotations


def quiet_libraries() -> None:
    import os
    import sys
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"  # read when datasets is imported (not by serve)
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
