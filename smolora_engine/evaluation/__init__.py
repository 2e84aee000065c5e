"""What the model answers: eval prompts, checks on the answers, batched greedy generation, scoring.

- checks.py: `contains:`, `not_contains:`, `regex:`, `max_words:`, `json` (light: the settings screen uses it)
- prompts.py: the prompts file (or the eval split's first rows) with references and per-prompt checks
- answers.py: greedy, batched, time-bounded answers through the run's chat format
- score.py: `smolora eval`: base and adapter (or a checkpoint, or the merged model) on the prompts
"""
