"""smolora_tui: the Textual app. It talks to the engine through processes and files, and never
imports torch, transformers, peft, trl or datasets."""
