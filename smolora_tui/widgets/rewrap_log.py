"""A RichLog that wraps its lines again when its width changes (RichLog keeps them as first wrapped)."""

from __future__ import annotations

from collections import deque

from textual.events import Resize
from textual.widgets import RichLog


class RewrapLog(RichLog):
    """Keeps what was written (up to `max_lines`) and writes it again at a new width."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept: deque = deque(maxlen=self.max_lines or 1000)
        self._wrapped_at = 0

    def write(self, content, *args, **kwargs):
        self._kept.append((content, args, kwargs))
        return super().write(content, *args, **kwargs)

    def clear(self):
        self._kept.clear()
        return super().clear()

    def on_resize(self, event: Resize) -> None:
        first = not self._size_known
        super().on_resize(event)
        width = event.size.width
        if first or not width or width == self._wrapped_at:
            self._wrapped_at = width or self._wrapped_at
            return
        self._wrapped_at = width
        kept = list(self._kept)
        super().clear()
        for content, args, kwargs in kept:
            super().write(content, *args, **{**kwargs, "scroll_end": True})
