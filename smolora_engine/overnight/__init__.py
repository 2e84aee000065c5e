"""Runs that go on without you: the queue, its runner, and sweeps that fill it.

- queue_file.py: the per-user queue (one JSON file, written atomically under a lock)
- runner.py: `smolora queue run`: trains the entries one after another with the normal worker
- sweep.py: a grid of settings (`lora.r=8,16 training.learning_rate=1e-4,5e-4`) checked, then queued
- commands.py: the `smolora queue` and `smolora sweep` commands
"""
