"""Write tend equipment plugins in Python.

A plugin is a `Plugin` subclass: a static description (fault codes, meters,
warranty defaults, inspection plans) and `evaluate`, which judges one message of one
device given that device's state. `export` turns it into the class componentize-py
builds into a WebAssembly component of the `tend:plugin` world; the same code runs
in CPython, so rules are unit-tested with `python -m unittest` and no runtime.
`evaluate_batch` (what the host calls) comes from `evaluate`: write one function.

Layout (mirrors the Rust SDK, plugins/sdk):

- `types`: the contract's generated types and builders (`active`, `inactive`, `fault` ...).
- `payload`: JSON payload access that tells *missing* from *not a number*.
- `settings`: per-device threshold overrides from the inventory.
- `time`: durations in event time (`Held`, `ChangeSinceOn`) and time windows (`Window`).
- `state`: the per-device state dataclass to and from the bytes the host keeps.
- `plugin`: `Plugin`, the batch runner, `export`.
- `errors`: `BadPayload`, `BadSettings`, `BadState`.
- `text`: `num`, numbers printed as the Rust plugins print them.
- `build`: the build command (`python -m tend_plugin.build`): bindings, type check,
  component.

Example:

    from dataclasses import dataclass, field
    from tend_plugin import *

    @dataclass
    class State:
        hot: Held = field(default_factory=Held)

    class Boiler(Plugin[State]):
        state_type = State

        def describe(self) -> Description:
            return description(
                "boiler", "0.1.0",
                faults=[fault("overheat", "Boiler overheating", 2, "main_unit")],
                warranty=[warranty("main_unit", 24)],
            )

        def evaluate(self, device: Device, message: Message, state: State) -> Outcome:
            p = Payload.parse(message.payload)
            limit = settings(device).number_or("overheat_c", 95.0)
            out = outcome()
            t = p.number("temp_c").ok()
            if t is not None:
                # Active once the temperature stayed at or above the limit for 5 minutes.
                hot = state.hot.held(t >= limit, message.ts_ms, minutes(5))
                out.conditions.append(
                    active("overheat", 2, f"{t} °C for 5 min",
                           [evidence(message.ts_ms, "temp_c", t)])
                    if hot else inactive("overheat"))
            return out

    WitWorld = export(Boiler())
"""

from .errors import BadPayload, BadSettings, BadState, PluginError
from .payload import Field, Payload
from .plugin import Plugin, export, run_batch, run_one
from .settings import Settings, settings
from .text import num
from .time import (
    HOUR_MS,
    MINUTE_MS,
    SECOND_MS,
    ChangeSinceOn,
    Held,
    OnRun,
    Window,
    hours,
    minutes,
    seconds,
)
from . import types as _types
from .types import *  # noqa: F403

__all__ = [
    "BadPayload",
    "BadSettings",
    "BadState",
    "PluginError",
    "Field",
    "Payload",
    "Plugin",
    "export",
    "run_batch",
    "run_one",
    "Settings",
    "settings",
    "num",
    "HOUR_MS",
    "MINUTE_MS",
    "SECOND_MS",
    "ChangeSinceOn",
    "Held",
    "OnRun",
    "Window",
    "hours",
    "minutes",
    "seconds",
]
__all__ += _types.__all__
