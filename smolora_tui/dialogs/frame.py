"""The frame every dialog shares: centred, a bordered panel, buttons aligned right."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

Result = TypeVar("Result")


class Dialog(ModalScreen[Result]):
    """A modal screen whose content is one `Vertical`; subclasses set its width and their own parts."""

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical {
        width: 64; max-width: 100%; height: auto; max-height: 100%; padding: 1 2;
        background: $panel; border: thick $primary;
    }
    Dialog Horizontal { height: auto; align-horizontal: right; }
    Dialog Button { margin-left: 2; }
    Dialog #error { color: $error; height: auto; }
    """
