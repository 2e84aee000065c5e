"""Parts of a screen built just after its first frame, one at a time, so the app shows at once.

Textual draws a screen only once everything composed in it is mounted; a widget
that is not visible yet (a mode behind a tab, the lower rows of a long form)
costs start-up time for nothing. `Later` holds such parts as named build steps:
they run one per timer tick once the first frame is out (keys typed meanwhile
are answered between steps), or at once when something needs a part now.
"""

from __future__ import annotations

from typing import Callable

from textual.widget import Widget

STEP_GAP_S = 0.01
# Textual publishes a screen's layout-refresh signal after it writes a frame, but not for the app's very
# first frame (it posts Ready instead); the parts are built after this long if no signal comes.
FALLBACK_S = 1.0


class Later:
    def __init__(self, owner: Widget):
        self.owner = owner
        self.pending: dict[str, Callable[[], object]] = {}

    def add(self, key: str, build: Callable[[], object]) -> None:
        self.pending[key] = build

    def start(self) -> None:
        """Build the pending parts once the owner's screen has been drawn (call from on_mount)."""
        if self.pending:
            self.owner.screen.screen_layout_refresh_signal.subscribe(self.owner, self._drawn)
            self._fallback = self.owner.set_timer(FALLBACK_S, self._drawn)

    def _drawn(self, _screen: object = None) -> None:
        self.owner.screen.screen_layout_refresh_signal.unsubscribe(self.owner)
        self._fallback.stop()
        # While the app starts, the screen draws its frame from its queue after the signal: queue behind it.
        self.owner.screen.call_later(self._next)

    def now(self, key: str) -> None:
        """Build `key` at once if it is still pending."""
        build = self.pending.pop(key, None)
        if build is not None:
            build()

    @property
    def done(self) -> bool:
        return not self.pending

    def _next(self) -> None:
        if self.pending and self.owner.is_attached:
            self.now(next(iter(self.pending)))
            if self.pending:
                self.owner.set_timer(STEP_GAP_S, self._next)
