"""The module componentize-py builds: the door-controller plugin as the component's
`tend:plugin` exports."""

from door_controller import DoorController
from tend_plugin import export

WitWorld = export(DoorController())
