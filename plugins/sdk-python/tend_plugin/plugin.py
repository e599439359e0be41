"""What a plugin author writes (`Plugin`), how its state and batches are handled
around `evaluate` (`run_one`, `run_batch`), and how it becomes the component's
exports (`export`).

    @dataclass
    class State:
        hot: Held = field(default_factory=Held)

    class Boiler(Plugin[State]):
        state_type = State

        def describe(self) -> Description: ...
        def evaluate(self, device: Device, message: Message, state: State) -> Outcome: ...

    WitWorld = export(Boiler())      # in the module componentize-py builds
"""

from typing import Any, Generic, List, Optional, Type, TypeVar

import wit_world
from componentize_py_types import Err, Ok, Result
from wit_world.imports import types as wit

from . import state as codec
from .errors import PluginError

__all__ = ["Plugin", "run_one", "run_batch", "export"]

S = TypeVar("S")


class Plugin(Generic[S]):
    """A plugin: a static description and `evaluate`, which judges one message of
    one device given that device's state (a dataclass, changed in place).

    Raise `BadPayload` / `BadSettings` for a message the plugin cannot use, before
    changing the state. Any other exception is a bug: the call traps, the host
    restarts the instance and counts the failure toward quarantine.
    """

    #: The dataclass of the per-device state (constructed with no arguments at first).
    state_type: Type[S]

    def describe(self) -> wit.Description:
        """The plugin's static description."""
        raise NotImplementedError

    def evaluate(self, device: wit.Device, message: wit.Message, state: S) -> wit.Outcome:
        """Judges one message."""
        raise NotImplementedError

    def new_state(self) -> S:
        """The state of a device seen for the first time."""
        return self.state_type()

    def load_state(self, data: Optional[bytes]) -> S:
        """Decodes the stored state (None or empty: a device seen for the first time)."""
        if not data:
            return self.new_state()
        return codec.decode(self.state_type, data)

    def save_state(self, state: S) -> bytes:
        """Encodes the state for the host to keep."""
        return codec.encode(state)


def run_one(
    plugin: Plugin[Any], device: wit.Device, message: wit.Message, state: Optional[bytes]
) -> wit.Evaluation:
    """Evaluates one message (raises PluginError)."""
    st = plugin.load_state(state)
    out = plugin.evaluate(device, message, st)
    return wit.Evaluation(out, plugin.save_state(st))


def run_batch(
    plugin: Plugin[Any],
    device: wit.Device,
    messages: List[wit.Message],
    state: Optional[bytes],
) -> wit.BatchEvaluation:
    """Evaluates several messages of one device in order, decoding and encoding the
    state once. If the state cannot be decoded, every outcome is that error and the
    state comes back unchanged (the host then retries with no state)."""
    unchanged = bytes(state) if state else b""
    try:
        st = plugin.load_state(state)
    except PluginError as e:
        err = e.to_wit()
        return wit.BatchEvaluation([Err(err) for _ in messages], unchanged)
    outcomes: List[Result[wit.Outcome, wit.EvalError]] = []
    evaluate = plugin.evaluate
    for m in messages:
        try:
            outcomes.append(Ok(evaluate(device, m, st)))
        except PluginError as e:
            outcomes.append(Err(e.to_wit()))
    try:
        saved = plugin.save_state(st)
    except PluginError as e:
        err = e.to_wit()
        return wit.BatchEvaluation([Err(err) for _ in messages], unchanged)
    return wit.BatchEvaluation(outcomes, saved)


def export(plugin: Plugin[Any]) -> type:
    """The class componentize-py exports as the `tend:plugin` world: assign it to
    `WitWorld` in the module you build (`WitWorld = export(MyPlugin())`)."""

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> wit.Description:
            return plugin.describe()

        def evaluate(
            self, device: wit.Device, message: wit.Message, state: Optional[bytes]
        ) -> wit.Evaluation:
            try:
                return run_one(plugin, device, message, state)
            except PluginError as e:
                raise Err(e.to_wit()) from None

        def evaluate_batch(
            self, device: wit.Device, messages: List[wit.Message], state: Optional[bytes]
        ) -> wit.BatchEvaluation:
            return run_batch(plugin, device, messages, state)

    WitWorld.__qualname__ = WitWorld.__name__ = "WitWorld"
    return WitWorld
