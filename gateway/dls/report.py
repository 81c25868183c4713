"""The validation report in the DLS Validator's vocabulary: errors and warnings, with fixes.

An *error* drops what it concerns (a relation, or a whole register whose datamodel cannot be
read) and makes the report fail; a *warning* keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.model.datamodel import Register

__all__ = ["DlsPair", "External", "Message", "Report"]


@dataclass(frozen=True, slots=True)
class Message:
    """One line of a validation report."""

    severity: str  # "error" | "warning"
    file: str
    what: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return (
            f"{self.severity.upper():7} {self.file}\n"
            f"        {self.what}: {self.problem}\n"
            f"        fix: {self.fix}"
        )


@dataclass(slots=True)
class Report:
    """What validation found, and the registers that survived it."""

    registers: list[Register] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    # Per register, its external versions in order (see :class:`External`).
    versions: dict[str, list[External]] = field(default_factory=dict)
    # Per register, the DLS pairs (XSD model + read XMI) its channels deliver, newest last.
    pairs: dict[str, list[DlsPair]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.severity == "error"]

    @property
    def warnings(self) -> list[Message]:
        return [m for m in self.messages if m.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, file: Path | str, what: str, problem: str, fix: str) -> None:
        self.messages.append(Message("error", str(file), what, problem, fix))

    def warning(self, file: Path | str, what: str, problem: str, fix: str) -> None:
        self.messages.append(Message("warning", str(file), what, problem, fix))

    def render(self) -> str:
        """The report as text, DLS-Validator style."""
        lines = [str(m) for m in self.messages]
        names = ", ".join(f"{r.name} ({r.rc})" for r in self.registers) or "none"
        lines.append(
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s); "
            f"registers loaded: {names}"
        )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class External:
    """One external version ``/{REG}/v{number}``: a datamodel version with a RelationVersion."""

    number: str
    register: Register
    relation_version: str


@dataclass(frozen=True, slots=True)
class DlsPair:
    """A datamodel version delivered as the DLS pair: the XSD's model and the XMI read."""

    rc: str
    model: Any  # gateway.model.datamodel.Datamodel of the XSD
    xmi: Any | None  # gateway.dls.xmi.XmiModel, None when the XMI is missing or unreadable
    xsd_file: Path
    xmi_file: Path | None
