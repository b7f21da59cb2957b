"""The rating row under a live answer: 1–5 buttons and a note box (ipywidgets).

A click stores the rating (and the note typed so far) with the run through ``learning.rate``,
the same path as ``%research rate``; clicking again replaces the run's rating for learning.
ipywidgets is imported when a row is built, never at ``%load_ext``.
"""

from __future__ import annotations

from typing import Any

from .. import learning
from ..errors import FourHostsError


class RatingRow:
    """Rating buttons for one run. ``buttons[n - 1].click()`` rates it n from Python too."""

    def __init__(self, store: Any, run_id: str) -> None:
        import ipywidgets as w

        self.store = store
        self.run_id = run_id
        self.rating: int | None = None
        self.buttons = [
            w.Button(description=str(n), tooltip=f"rate this answer {n}/5",
                     layout=w.Layout(width="36px"))
            for n in range(1, 6)
        ]  # fmt: skip
        for n, button in enumerate(self.buttons, start=1):
            button.on_click(lambda _b, n=n: self.rate(n))
        self.note = w.Text(placeholder="note (optional), then click a rating",
                           layout=w.Layout(width="320px"))  # fmt: skip
        self.status = w.Label(value="")
        self.box = w.HBox([w.Label("Rate this answer:"), *self.buttons, self.note, self.status])
        for widget, name in ((self.box, "fh-rating"), (self.note, "fh-rating-note"),
                             (self.status, "fh-rating-status"), *((b, "fh-rating-button") for b in self.buttons)):
            widget.add_class(name)  # for the browser test and for styling  # fmt: skip

    def rate(self, n: int) -> None:
        try:
            learning.rate(self.store, self.run_id, n, self.note.value.strip())
        except FourHostsError as exc:  # shown in the row: a callback has no cell to fail
            self.status.value = f"not saved: {exc}"
            return
        self.rating = n
        for i, button in enumerate(self.buttons, start=1):
            button.button_style = "info" if i == n else ""
        self.status.value = f"rated {n}/5" + (" with a note" if self.note.value.strip() else "")

    def __repr__(self) -> str:
        return f"Rate this answer: %research rate {self.run_id} 1-5 [NOTE]"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.box._repr_mimebundle_())
        bundle["text/plain"] = repr(self)
        return bundle
