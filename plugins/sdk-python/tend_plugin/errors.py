"""A message the plugin cannot use: raised by rules and helpers, returned to the
host as the contract's `eval-error` (never a trap)."""

from typing import Union

from wit_world.imports import types as wit

__all__ = ["PluginError", "BadPayload", "BadSettings", "BadState"]


class PluginError(Exception):
    """Base of the three errors the contract knows; `message` is the text for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wit(self) -> "wit.EvalError":
        """The contract's `eval-error` variant."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.message == getattr(other, "message", None)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadPayload(PluginError):
    """The payload is not in a format this plugin understands."""

    def to_wit(self) -> "wit.EvalError":
        return wit.EvalError_BadPayload(self.message)


class BadSettings(PluginError):
    """The device's inventory settings are invalid for this plugin."""

    def to_wit(self) -> "wit.EvalError":
        return wit.EvalError_BadSettings(self.message)


class BadState(PluginError):
    """The stored state could not be read back (the host then starts afresh)."""

    def to_wit(self) -> "wit.EvalError":
        return wit.EvalError_BadState(self.message)


def from_wit(e: "wit.EvalError") -> Union[BadPayload, BadSettings, BadState]:
    """The SDK's exception for a contract `eval-error`."""
    if isinstance(e, wit.EvalError_BadPayload):
        return BadPayload(e.value)
    if isinstance(e, wit.EvalError_BadSettings):
        return BadSettings(e.value)
    return BadState(e.value)
