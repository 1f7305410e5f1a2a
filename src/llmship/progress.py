"""One small progress reporter for long work (training steps, uploads, waits).

State lives in the caller, display here; the clock is passed in by callers that
compute rates, so tests stay deterministic. Tests use RecordingReporter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter(Protocol):
    def start(self, description: str, total: int | None, completed: int = 0) -> None: ...

    def update(self, completed: int, **fields: Any) -> None: ...

    def finish(self) -> None: ...

    def message(self, text: str) -> None: ...


class RichReporter:
    """A rich progress bar with free-form fields (loss, lr, tokens/s) beside it."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, completed=completed, stats=""
        )

    def update(self, completed: int, **fields: Any) -> None:
        if self._progress is None:
            return
        stats = "  ".join(f"{key} {value}" for key, value in fields.items())
        self._progress.update(self._task, completed=completed, stats=stats)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            self.console.print(text)


@dataclass
class RecordingReporter:
    """Keeps every call, for tests and for callers that print nothing."""

    events: list[tuple[str, Any]] = field(default_factory=list)

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self.events.append(("start", (description, total, completed)))

    def update(self, completed: int, **fields: Any) -> None:
        self.events.append(("update", (completed, fields)))

    def finish(self) -> None:
        self.events.append(("finish", None))

    def message(self, text: str) -> None:
        self.events.append(("message", text))
