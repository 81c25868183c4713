"""The credit a register's upstream asks for, as declared in its ``Source.json``.

``"attribution"`` is the line to show with the data (e.g. ``"Kilde: Folketingets åbne data,
oda.ft.dk"``). Three optional companions make it machine-readable:
``"attributionRequired"`` (true when the upstream's terms require naming it as the source:
then every GraphQL answer touching the register carries it in ``extensions.attribution``),
``"attributionName"`` (who is to be named, e.g. ``"Folketinget"``) and ``"attributionUrl"``
(where the data and its terms are). A required attribution is also in the SDL (after the
description of each of the register's entity types); ``/catalog.json`` and every export's
metadata carry any declared attribution, required or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.model.datamodel import Register

__all__ = ["Attribution", "attribution"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """One register's attribution."""

    register: str
    text: str
    required: bool = False
    name: str | None = None
    url: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The attribution as ``extensions.attribution`` and ``/catalog.json`` give it."""
        out: dict[str, Any] = {"register": self.register, "text": self.text}
        if self.name:
            out["name"] = self.name
        if self.url:
            out["url"] = self.url
        out["required"] = self.required
        return out

    def line(self) -> str:
        """One line for descriptions and headers: the text, and the URL if it adds one."""
        if self.url and self.url not in self.text:
            return f"{self.text} ({self.url})"
        return self.text


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def attribution(register: Register) -> Attribution | None:
    """The attribution ``register`` declares, or None."""
    source = register.source or {}
    text = _text(source.get("attribution"))
    if text is None:
        return None
    return Attribution(
        register=register.name,
        text=text,
        required=source.get("attributionRequired") is True,
        name=_text(source.get("attributionName")),
        url=_text(source.get("attributionUrl")),
    )
