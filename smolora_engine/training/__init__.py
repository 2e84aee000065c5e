"""Training: the worker and its run folder, the trainer and its loss, memory, eval samples, launching.

- worker.py: `smolora train` in its own process, from the frozen settings to the adapter
- trainer.py, loss.py: SFTTrainer with the loss at the trained positions only; its arguments; LoRA
- callback.py: events from the trainer, the stop at a step boundary, checkpoint rotation
- memory.py: what is used, what is free, the estimate and what to lower
- launch.py: the worker's command line, the multi-process launcher, detach, stop
"""

from .errors import TrainingRefused
from .launch import start_detached, stop_run
from .worker import prepare_run, run_training

__all__ = ["TrainingRefused", "prepare_run", "run_training", "start_detached", "stop_run"]
