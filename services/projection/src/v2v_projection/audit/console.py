"""Terminal output of the audit CLI: results on stdout, progress bars and errors on stderr."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EXIT_OK = 0
EXIT_BREAKS = 1
EXIT_INPUT = 2
ADVANCE_EVERY = 1024
PIPED_WIDTH = 200

T = TypeVar("T")


def stdout() -> Console:
    """Results; when piped to a file (and COLUMNS is unset), tables are not squeezed to 80."""
    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=PIPED_WIDTH)


def stderr() -> Console:
    return Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Stop with exit code 2 and a one-line reason (an input problem, never a traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


class Ticker:
    """Counts items through a progress task, advancing the bar in batches (cheap per item)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._pending = 0
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        self._pending += 1
        if self._pending >= ADVANCE_EVERY:
            self.flush()

    def flush(self) -> None:
        self._progress.advance(self._task, self._pending)
        self._pending = 0

    def through(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            yield item
            self()
        self.flush()


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Ticker]:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    console = stderr()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        ticker = Ticker(progress, progress.add_task(description, total=total))
        try:
            yield ticker
        finally:
            ticker.flush()
