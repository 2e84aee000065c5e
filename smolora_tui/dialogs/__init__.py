"""Reusable modal dialogs."""

from .confirm import ConfirmDialog
from .model_picker import ModelPickerDialog
from .targets_picker import TargetsDialog
from .text_input import TextInputDialog

__all__ = ["ConfirmDialog", "ModelPickerDialog", "TargetsDialog", "TextInputDialog"]
