"""Why training cannot start."""


class TrainingRefused(Exception):
    """Training cannot start (a setting, the memory, the data); the message says what to change."""
