"""The plugin's static description: fault codes, meter, warranty, inspections."""

from tend_plugin import (
    Description,
    Every,
    Months,
    MeterTrigger,
    description as make_description,
    fault,
    inspection,
    meter_spec,
    warranty,
)

#: Fault code: a door stood open too long.
DOOR_HELD_OPEN = "door_held_open"
#: Fault code: the door opened without a valid access.
FORCED_OPEN = "forced_open"
#: Fault code: the lock did not engage (or the controller reported a lock fault).
LOCK_FAULT = "lock_fault"
#: Fault code: mains supply lost.
MAINS_FAILURE = "mains_failure"
#: Fault code: backup battery low.
BATTERY_LOW = "battery_low"
#: Fault code: tamper switch open.
TAMPER = "tamper"
#: Fault code: many access denials in a short time.
READER_SUSPECT = "reader_suspect"

#: Every fault code of this plugin, in the order of telemetry.md.
ALL_CODES = [
    DOOR_HELD_OPEN,
    FORCED_OPEN,
    LOCK_FAULT,
    MAINS_FAILURE,
    BATTERY_LOW,
    TAMPER,
    READER_SUSPECT,
]

#: The usage meter: open/close cycles (`cycles_total` of the telemetry).
DOOR_CYCLES = "door_cycles"

#: Warranty component: leaf, closer, hinges, lock and strike.
DOOR_HARDWARE = "door_hardware"
#: Warranty component: access controller, card reader, sensors, tamper switches.
CONTROLLER = "controller"
#: Warranty component: power supply unit and backup battery.
POWER_SUPPLY = "power_supply"


def description() -> Description:
    """The description handed to the host (the Rust door-controller plugin's, exactly)."""
    return make_description(
        "door-controller",
        "0.1.0",
        faults=[
            fault(DOOR_HELD_OPEN, "Door held open", 3, DOOR_HARDWARE),
            fault(FORCED_OPEN, "Door forced open", 2, DOOR_HARDWARE),
            fault(LOCK_FAULT, "Lock fault", 2, DOOR_HARDWARE),
            fault(MAINS_FAILURE, "Mains power failure", 2, POWER_SUPPLY),
            fault(BATTERY_LOW, "Backup battery low", 3, POWER_SUPPLY),
            fault(TAMPER, "Tamper alarm", 2, CONTROLLER),
            fault(READER_SUSPECT, "Card reader suspect (repeated denials)", 4, CONTROLLER),
        ],
        meters=[meter_spec(DOOR_CYCLES, "cycles")],
        # maintenance.md §5: doors 2 years.
        warranty=[warranty(c, 24) for c in (DOOR_HARDWARE, CONTROLLER, POWER_SUPPLY)],
        inspections=[
            inspection(
                "semiannual",
                "Semiannual door and access-control inspection",
                every=Months(6),
                checklist=[
                    "Door closer: closes the leaf fully from wide open and latches; closing and latching speed adjusted; no oil leak",
                    "Hinges / pivots: fixings tight, no sagging, lubricated; leaf does not rub frame or floor",
                    "Lock and strike: lock engages on every close, releases on a valid card; strike aligned, screws tight",
                    "Door position and lock sensors: controller shows open/closed and locked/unlocked correctly",
                    "Card reader: clean, reads a valid card, refuses an invalid one; review the denial log",
                    "Exit button and emergency release (break-glass) unlock the door",
                    "Power supply: mains present, output voltage within rating, fuse and wiring sound",
                    "Backup battery: at least 12 V, holds the door locked on battery, terminals clean; note its age",
                    "Tamper switches of controller and reader enclosures trip and report an alarm",
                    "Held-open and forced-open alarms reach the monitoring point",
                    "Signage, handles, seals and door furniture intact",
                    "Read controller clock, event log and cycle counter into the inspection record",
                ],
            ),
            inspection(
                "fire-certification",
                "Yearly fire-door certification check",
                every=Months(12),
                checklist=[
                    "Fire-rating label / certificate on leaf and frame present and legible",
                    "Door self-closes and latches from any opening angle; double doors close in the right order (coordinator)",
                    "Intumescent strips and smoke seals intact and not painted over",
                    "Gaps between leaf, frame and floor within the certified tolerance",
                    "Hold-open devices release on fire alarm and on power loss",
                    "Door unlocks for escape on fire alarm (fail-safe lock) and panic hardware works",
                    "Fire-rated glazing and vision panels undamaged",
                    "Held-open alarm raised when the door is propped open for 60 s",
                    "'Fire door — keep closed' signs on both sides",
                    "Results entered in the fire-door register and certificate renewed",
                ],
                only_if_setting="fire_door",
            ),
            inspection(
                "hardware-service",
                "Door hardware service (every 50,000 cycles)",
                meter=MeterTrigger(DOOR_CYCLES, Every(50_000.0)),
                checklist=[
                    "Door closer: check for oil leak and weak closing, readjust or replace",
                    "Hinges / pivots: check wear and play, lubricate, tighten or replace worn hinges",
                    "Lock: check latch, bolt and strike wear, lubricate, test engagement; replace worn lock body",
                    "Record the cycle counter after the service",
                ],
            ),
        ],
        offline_timeout_s=300,
    )
