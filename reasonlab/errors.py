"""Errors a user can fix. The CLI prints them without a traceback and exits 2."""

from __future__ import annotations


class ReasonlabError(Exception):
    """Something the user can fix: says what is wrong, where, and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class RecipeError(ReasonlabError):
    """A recipe file that cannot be read, parsed or validated."""


class PluginError(ReasonlabError):
    """A plugin that fails to load, or two plugins that claim the same name."""


class DataError(ReasonlabError):
    """A dataset that is missing, unreadable or lacks the columns a stage needs."""


class ModelError(ReasonlabError):
    """Model weights that cannot be found or do not fit the preset."""
