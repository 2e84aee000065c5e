"""Reusable modal dialogs."""

from .choice import ChoiceDialog
from .confirm import ConfirmDialog
from .model_picker import ModelPickerDialog
from .targets_picker import TargetsDialog
from .text_input import TextInputDialog

__all__ = ["ChoiceDialog", "ConfirmDialog", "ModelPickerDialog", "TargetsDialog", "TextInputDialog"]
