"""Core code talks to a Console, never to print: terminal, captured (tests) or silent."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rich.console import Console as RichConsole


@dataclass
class Console:
    """A thin facade over rich; `capture=True` keeps lines in memory for tests."""

    capture: bool = False
    quiet: bool = False
    debug: bool = field(default_factory=lambda: bool(os.environ.get("DEBUG")))  # `--debug` or DEBUG=1
    lines: list[str] = field(default_factory=list)
    # soft_wrap: a line is never broken at the terminal's (or a pipe's 80-column) width; one message, one line.
    _rich: RichConsole = field(default_factory=lambda: RichConsole(highlight=False, soft_wrap=True))

    def info(self, message: str) -> None:
        self._emit(message)

    def step(self, message: str) -> None:
        self._emit(f"[bold cyan]>[/] {message}")

    def ok(self, message: str) -> None:
        self._emit(f"[green]✓[/] {message}")

    def detail(self, message: str) -> None:
        """An internal note (which access path, which workaround): shown only with --debug."""
        if self.debug:
            self._emit(f"[dim]{message}[/]")

    def warn(self, message: str) -> None:
        self._emit(f"[yellow]![/] {message}")

    def table(self, table: object) -> None:
        if not (self.capture or self.quiet):
            self._rich.print(table)

    @property
    def rich(self) -> RichConsole:
        return self._rich

    def _emit(self, markup: str) -> None:
        if self.capture:
            from rich.text import Text

            self.lines.append(Text.from_markup(markup).plain)
        elif not self.quiet:
            self._rich.print(markup)
