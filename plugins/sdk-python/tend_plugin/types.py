"""The contract's types (`wit/plugin.wit`), as componentize-py generates them, and
helpers that build them the way the Rust SDK's constructors do.

    active("overheat", 2, f"Tank at {t:.1f} °C", [evidence(ts, "tank_temp_c", t)],
           hardware("Thermostat stuck", ["thermostat"]))
    inactive("overheat")
    judge("tamper", tamper, lambda: active("tamper", 2, "Tamper switch open"))
"""

from typing import Callable, Iterable, Optional, Sequence

from wit_world.imports.types import (
    BatchEvaluation,
    Category,
    Condition,
    Description,
    Device,
    Diagnosis,
    EvalError,
    EvalError_BadPayload,
    EvalError_BadSettings,
    EvalError_BadState,
    Evaluation,
    Evidence,
    FaultSpec,
    InspectionPlan,
    Message,
    MessageKind,
    MeterReading,
    MeterRule,
    MeterRule_Every,
    MeterRule_Reaches,
    MeterSpec,
    MeterTrigger,
    Outcome,
    Period,
    Period_Days,
    Period_Months,
    WarrantyDefault,
)

__all__ = [
    # The generated contract types.
    "BatchEvaluation",
    "Category",
    "Condition",
    "Description",
    "Device",
    "Diagnosis",
    "EvalError",
    "EvalError_BadPayload",
    "EvalError_BadSettings",
    "EvalError_BadState",
    "Evaluation",
    "Evidence",
    "FaultSpec",
    "InspectionPlan",
    "Message",
    "MessageKind",
    "MeterReading",
    "MeterRule",
    "MeterSpec",
    "MeterTrigger",
    "Outcome",
    "Period",
    "WarrantyDefault",
    # Shorter names for the variant cases.
    "Days",
    "Months",
    "Every",
    "Reaches",
    "TELEMETRY",
    "EVENT",
    "STATUS",
    # Builders.
    "active",
    "inactive",
    "judge",
    "evidence",
    "hardware",
    "software",
    "outcome",
    "meter",
    "fault",
    "meter_spec",
    "warranty",
    "inspection",
    "description",
]

#: A calendar period of days (`Days(30)`).
Days = Period_Days
#: Calendar months: 6 months after 2026-03-31 is 2026-09-30 (`Months(6)`).
Months = Period_Months
#: A meter rule: each time the meter advanced this much since the last completion.
Every = MeterRule_Every
#: A meter rule: when the meter reaches this value.
Reaches = MeterRule_Reaches

TELEMETRY = MessageKind.TELEMETRY
EVENT = MessageKind.EVENT
STATUS = MessageKind.STATUS


def active(
    code: str,
    severity: int,
    summary: str,
    evidence: Iterable[Evidence] = (),
    diagnosis: Optional[Diagnosis] = None,
) -> Condition:
    """A condition that holds at this message (severity 1 critical ..= 4 warning)."""
    return Condition(code, True, severity, summary, list(evidence), diagnosis)


def inactive(code: str) -> Condition:
    """A condition that does not hold at this message (the host starts its clear hold)."""
    return Condition(code, False, 0, "", [], None)


def judge(code: str, holds: bool, make: Callable[[], Condition]) -> Condition:
    """`make()` when `holds`, else `inactive(code)`."""
    return make() if holds else inactive(code)


def evidence(ts_ms: int, field: str, value: float) -> Evidence:
    """A reading that supports a condition."""
    return Evidence(ts_ms, field, float(value))


def hardware(cause: str, parts: Sequence[str] = ()) -> Diagnosis:
    """A hardware diagnosis with spare parts worth bringing."""
    return Diagnosis(cause, Category.HARDWARE, list(parts))


def software(cause: str) -> Diagnosis:
    """A software / configuration diagnosis."""
    return Diagnosis(cause, Category.SOFTWARE, [])


def outcome(
    conditions: Iterable[Condition] = (), meters: Iterable[MeterReading] = ()
) -> Outcome:
    """What one message changed (empty by default)."""
    return Outcome(list(conditions), list(meters))


def meter(name: str, value: float) -> MeterReading:
    """The absolute value of a usage meter after this message."""
    return MeterReading(name, float(value))


def fault(
    code: str,
    title: str,
    default_severity: int,
    component: str,
    interrupts_service: bool = False,
) -> FaultSpec:
    """A fault code the plugin can raise."""
    return FaultSpec(code, title, default_severity, interrupts_service, component)


def meter_spec(name: str, unit: str) -> MeterSpec:
    """A usage meter the plugin reports."""
    return MeterSpec(name, unit)


def warranty(component: str, months: int) -> WarrantyDefault:
    """A component's default warranty, in months from commissioning."""
    return WarrantyDefault(component, months)


def inspection(
    id: str,
    title: str,
    checklist: Sequence[str],
    every: Optional[Period] = None,
    meter: Optional[MeterTrigger] = None,
    only_if_setting: Optional[str] = None,
) -> InspectionPlan:
    """A preventive inspection plan ("whichever comes first" of `every` and `meter`)."""
    return InspectionPlan(id, title, every, meter, list(checklist), only_if_setting)


def description(
    equipment_type: str,
    plugin_version: str,
    faults: Sequence[FaultSpec],
    warranty: Sequence[WarrantyDefault],
    meters: Sequence[MeterSpec] = (),
    inspections: Sequence[InspectionPlan] = (),
    offline_timeout_s: int = 300,
) -> Description:
    """The plugin's static description."""
    return Description(
        equipment_type,
        plugin_version,
        list(faults),
        list(meters),
        list(warranty),
        list(inspections),
        offline_timeout_s,
    )
