"""Per-device settings from the site inventory (threshold overrides).

    s = settings(device)                       # parsed once per distinct settings text
    limit = s.number_or("overheat_c", 95.0)    # BadSettings naming the key when not a number
    fire = s.boolean_or("fire_door", False)
"""

import json
import math
from functools import lru_cache
from typing import Any, Dict, Optional

from wit_world.imports import types as wit

from .errors import BadSettings
from .payload import loads

__all__ = ["Settings", "settings"]


def _show(v: Any) -> str:
    """A JSON value as compact JSON text (how the Rust SDK prints it in errors)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


class Settings:
    """A device's settings object."""

    __slots__ = ("values",)

    def __init__(self, values: Optional[Dict[str, Any]] = None) -> None:
        self.values: Dict[str, Any] = values if values is not None else {}

    @staticmethod
    def parse(text: str) -> "Settings":
        """Parses the settings JSON text (empty text means no settings)."""
        if not text.strip():
            return Settings()
        try:
            v = loads(text.encode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise BadSettings(f"settings are not JSON: {e}") from None
        if not isinstance(v, dict):
            raise BadSettings("settings must be a table")
        return Settings(v)

    def number_or(self, key: str, default: float) -> float:
        """A numeric setting, or `default` when absent; BadSettings naming the key otherwise."""
        if key not in self.values:
            return default
        v = self.values[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            x = float(v) if -1e308 < v < 1e308 else math.inf
            if x - x == 0.0:  # finite
                return x
        raise BadSettings(f"setting `{key}` must be a number, got {_show(v)}")

    def boolean_or(self, key: str, default: bool) -> bool:
        """A boolean setting, or `default` when absent."""
        if key not in self.values:
            return default
        v = self.values[key]
        if v is True or v is False:
            return v
        raise BadSettings(f"setting `{key}` must be true or false, got {_show(v)}")

    def string(self, key: str) -> Optional[str]:
        """A string setting, if present."""
        if key not in self.values:
            return None
        v = self.values[key]
        if isinstance(v, str):
            return v
        raise BadSettings(f"setting `{key}` must be a string, got {_show(v)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.values == other.values


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> Settings:
    return Settings.parse(text)


def settings(device: "wit.Device") -> Settings:
    """The device's parsed settings (cached by their text: a site has few distinct ones).

    The returned object is shared: read it, do not change it.
    """
    return _parse_cached(device.settings)
