"""The one error export raises: the model cannot be exported, and the message says why and what to do."""


class ExportError(Exception):
    """The model cannot be exported (the message says why and what to do)."""
