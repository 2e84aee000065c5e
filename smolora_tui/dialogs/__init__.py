"""Reusable modal dialogs."""

from .confirm import ConfirmDialog
from .text_input import TextInputDialog

__all__ = ["ConfirmDialog", "TextInputDialog"]
