"""One root exception with two kinds, so callers decide retry by class, never by message text."""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error this project raises on purpose; the CLI prints it as one line."""


class TerminalError(PipelineError):
    """Retrying will not help: bad input, bad config, missing permission."""


class TransientError(PipelineError):
    """Retrying may help: throttling, a busy emulator, a network blip."""


class ConfigError(TerminalError):
    """A setting is invalid; the message names the setting and the allowed values."""


class EmulatorDownError(TerminalError):
    """The local endpoint does not answer."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"no AWS emulator answers at {endpoint}; run `make up` first")
