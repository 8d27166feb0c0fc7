"""The readings an alert carries, in the runbooks' own units: its metrics whatever they are called, and
the readings its message states in words ("bearing temperature reached 98 C").

Units are converted by pint; the tables below only say how devices and people spell a unit or a
quantity. Message text is read by one left-to-right scan (no regular expression, so no backtracking),
over a bounded prefix, keeping a bounded number of readings.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from include.limits import MAX_MESSAGE

# The runbooks' metrics for each quantity, and the unit their thresholds are written in.
CANONICAL = {
    "temperature": ("temperature_c", "degC"),
    "pressure": ("pressure_bar", "bar"),
    "voltage": ("voltage_v", "volt"),
    "current": ("current_a", "ampere"),
}
# Metric names the runbooks use as they are (already in the runbooks' units).
RUNBOOK_METRICS = {"temperature_c": "temperature", "temperature": "temperature"} | {
    metric: quantity for quantity, (metric, _) in CANONICAL.items()
}
QUANTITY_WORDS = {
    "temperature": "temperature",
    "temp": "temperature",
    "pressure": "pressure",
    "voltage": "voltage",
    "current": "current",
}
# Spellings of units (lower case) -> pint's unit names.
UNIT_SPELLINGS = {
    "c": "degC",
    "degc": "degC",
    "°c": "degC",
    "celsius": "degC",
    "f": "degF",
    "degf": "degF",
    "°f": "degF",
    "fahrenheit": "degF",
    "k": "kelvin",
    "kelvin": "kelvin",
    "bar": "bar",
    "mbar": "millibar",
    "psi": "psi",
    "psig": "psi",
    "pa": "pascal",
    "kpa": "kilopascal",
    "mpa": "megapascal",
    "v": "volt",
    "mv": "millivolt",
    "kv": "kilovolt",
    "volt": "volt",
    "volts": "volt",
    "a": "ampere",
    "ma": "milliampere",
    "amp": "ampere",
    "amps": "ampere",
}
UNIT_QUANTITY = {
    "degC": "temperature",
    "degF": "temperature",
    "kelvin": "temperature",
    "bar": "pressure",
    "millibar": "pressure",
    "psi": "pressure",
    "pascal": "pressure",
    "kilopascal": "pressure",
    "megapascal": "pressure",
    "volt": "voltage",
    "millivolt": "voltage",
    "kilovolt": "voltage",
    "ampere": "current",
    "milliampere": "current",
}
SYMBOLS = {"degC": "°C", "degF": "°F", "kelvin": "K", "volt": "V", "ampere": "A", "millivolt": "mV"} | {
    "kilovolt": "kV",
    "milliampere": "mA",
    "millibar": "mbar",
    "pascal": "Pa",
    "kilopascal": "kPa",
    "megapascal": "MPa",
}
# In prose a lone letter is often a word ("a", "k"): only these spellings count as units there.
_TEXT_SINGLE_LETTERS = frozenset({"C", "c", "F", "f", "K", "V", "v", "A"})
_DEGREE_WORDS = frozenset({"deg", "degree", "degrees"})
# A number near these words is a limit or a setting, not what the device measures.
NOT_A_READING = frozenset(
    {"limit", "limits", "setpoint", "threshold", "nominal", "rated", "max", "min", "maximum", "minimum"}
    | {"target", "battery", "spec", "design", "trip"}
)
NOMINAL_LABELS = ("nominal_voltage_v", "nominal_voltage")
MAX_TEXT_READINGS = 16
_WINDOW_BEFORE, _WINDOW_AFTER = 3, 2
_SEPARATORS = frozenset(",;:()[]{}.!?|\n")


@dataclass(frozen=True)
class Reading:
    """One reading in a runbook's metric and unit.

    :param metric: The runbooks' metric (``temperature_c``, ``pressure_bar``...).
    :param value: The value in that metric's unit.
    :param name: What it measures, as the alert said it ("bearing temperature", ``TempF``).
    :param given: The value as given, with its unit ("205 °F").
    :param from_text: Read from the message text rather than sent as a metric.
    :param nominal: The device's nominal value of this quantity, when the alert gives one.
    :param converted: The value was converted from another unit.
    """

    metric: str
    value: float
    name: str
    given: str
    from_text: bool = False
    nominal: float | None = None
    converted: bool = False


@functools.cache
def _registry() -> Any:
    import pint  # only when a reading needs converting: the registry takes a while to build

    return pint.UnitRegistry()


def convert(value: float, unit: str, quantity: str) -> float:
    """Return `value` in `unit` (a pint name) converted to the runbooks' unit of `quantity`."""
    target = CANONICAL[quantity][1]
    if unit == target:
        return value
    registry = _registry()
    return float(registry.Quantity(value, unit).to(target).magnitude)


def _words(name: str) -> list[str]:
    """Split a metric name into lower-case words: snake_case, kebab-case, dotted and camelCase."""
    words: list[str] = []
    current = ""
    for i, ch in enumerate(name):
        if not ch.isalnum() and ch != "°":
            if current:
                words.append(current)
            current = ""
            continue
        if ch.isupper() and current and (name[i - 1].islower() or name[i - 1].isdigit()):
            words.append(current)
            current = ""
        current += ch
    if current:
        words.append(current)
    return [w.lower() for w in words]


def _unit_label(labels: dict[str, str], metric: str) -> str | None:
    raw = labels.get(f"{metric}_unit") or labels.get("unit") or labels.get("units")
    return UNIT_SPELLINGS.get(raw.strip().lower().replace(" ", "")) if raw else None


def _nominal(metrics: dict[str, float], labels: dict[str, str]) -> float | None:
    """Return the device's nominal supply voltage, from a label ("230", "230 V") or a metric."""
    for key in NOMINAL_LABELS:
        raw = labels.get(key)
        if raw:
            number = next((float(t) for kind, t in _tokens(raw) if kind == "num"), None)
            if number is not None and number > 0:
                return number
    for name, value in metrics.items():
        words = _words(name)
        if "nominal" in words and "voltage" in words and value > 0:
            unit = next((UNIT_SPELLINGS[w] for w in words if UNIT_SPELLINGS.get(w) in UNIT_QUANTITY), "volt")
            return convert(value, unit, "voltage")
    return None


def from_metrics(metrics: dict[str, float], labels: dict[str, str] | None = None) -> list[Reading]:
    """Return the metrics that are readings of a runbook's quantity, converted to its unit."""
    labels = labels or {}
    nominal = _nominal(metrics, labels)
    found = []
    for name, value in metrics.items():
        quantity = RUNBOOK_METRICS.get(name)
        unit: str | None = None
        words = _words(name)
        if quantity is None:
            if NOT_A_READING.intersection(words):
                continue
            named = [QUANTITY_WORDS[w] for w in words if w in QUANTITY_WORDS]
            units = [UNIT_SPELLINGS[w] for w in words if w in UNIT_SPELLINGS]
            unit = units[-1] if units and words[-1] in UNIT_SPELLINGS else None
            # The head noun comes last ("current_temperature" is a temperature).
            quantity = named[-1] if named else (UNIT_QUANTITY[unit] if unit and len(words) > 1 else None)
            if quantity is None or (unit is not None and UNIT_QUANTITY[unit] != quantity):
                continue
        if unit is None and name not in ("temperature_c", "pressure_bar", "voltage_v", "current_a"):
            labelled = _unit_label(labels, name)
            # A label's unit applies only to a metric of its quantity ("unit: degF" is no voltage).
            unit = labelled if labelled and UNIT_QUANTITY[labelled] == quantity else None
        unit = unit or CANONICAL[quantity][1]
        given = f"{value:g} {_symbol(unit)}"
        metric = CANONICAL[quantity][0] if name not in RUNBOOK_METRICS else name
        found.append(
            Reading(
                metric=metric,
                value=convert(value, unit, quantity),
                name=name,
                given=given,
                nominal=nominal if quantity == "voltage" else None,
                converted=unit != CANONICAL[quantity][1],
            )
        )
    return found


def _symbol(unit: str) -> str:
    return SYMBOLS.get(unit, unit)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Yield ("num", "98.5"), ("word", "bearing") and ("sep", ",") tokens of `text`, in one pass.

    Punctuation is kept as a separator: a word beyond a comma or a parenthesis belongs to another clause.
    """
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        signed = (
            ch in "+-" and i + 1 < n and "0" <= text[i + 1] <= "9" and (i == 0 or not text[i - 1].isalnum())
        )
        if "0" <= ch <= "9" or signed:
            j = i + 1
            while j < n and "0" <= text[j] <= "9":
                j += 1
            if j + 1 < n and text[j] == "." and "0" <= text[j + 1] <= "9":
                j += 1
                while j < n and "0" <= text[j] <= "9":
                    j += 1
            yield "num", text[i:j]
            i = j
        elif ch.isalpha() or ch == "°":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            yield "word", text[i:j]
            i = j
        else:
            if ch in _SEPARATORS:
                yield "sep", ch
            i += 1


def _text_unit(tokens: list[tuple[str, str]], k: int) -> tuple[str | None, int]:
    """Return the unit (a pint name) starting at token `k`, and how many tokens it takes."""
    if k >= len(tokens) or tokens[k][0] != "word":
        return None, 0
    word = tokens[k][1]
    if word.lower() in _DEGREE_WORDS and k + 1 < len(tokens) and tokens[k + 1][0] == "word":
        unit = UNIT_SPELLINGS.get("deg" + tokens[k + 1][1].lower())
        return (unit, 2) if unit in ("degC", "degF") else (None, 0)
    if len(word.lstrip("°")) == 1 and word.lstrip("°") not in _TEXT_SINGLE_LETTERS:
        return None, 0
    return UNIT_SPELLINGS.get(word.lower()), 1


def from_text(text: str | None) -> list[Reading]:
    """Return the readings a message states: a number, its unit, and the quantity it belongs to."""
    if not text:
        return []
    tokens = list(_tokens(text[:MAX_MESSAGE]))
    found: list[Reading] = []
    for k, (kind, value) in enumerate(tokens):
        if kind != "num":
            continue
        unit, width = _text_unit(tokens, k + 1)
        if unit is None:
            continue
        quantity = UNIT_QUANTITY[unit]
        before = _clause(tokens, k - 1, -1, _WINDOW_BEFORE)
        after = _clause(tokens, k + 1 + width, 1, _WINDOW_AFTER)
        if NOT_A_READING.intersection(before) or NOT_A_READING.intersection(after):
            continue
        found.append(
            Reading(
                metric=CANONICAL[quantity][0],
                value=convert(float(value), unit, quantity),
                name=_quantity_name(tokens, k, quantity),
                given=f"{value} {_symbol(unit)}",
                from_text=True,
                converted=unit != CANONICAL[quantity][1],
            )
        )
        if len(found) >= MAX_TEXT_READINGS:
            break
    return found


def _clause(tokens: list[tuple[str, str]], start: int, step: int, count: int) -> list[str]:
    """Return up to `count` words from `start` in direction `step`, stopping at a number or punctuation."""
    words: list[str] = []
    k = start
    while 0 <= k < len(tokens) and len(words) < count and tokens[k][0] == "word":
        words.append(tokens[k][1].lower())
        k += step
    return words


def _quantity_name(tokens: list[tuple[str, str]], k: int, quantity: str) -> str:
    """Return the words naming the quantity before the number ("bearing temperature"), or the quantity."""
    words = _clause(tokens, k - 1, -1, 4)
    for i, word in enumerate(words):
        if QUANTITY_WORDS.get(word) == quantity:
            previous = words[i + 1] if i + 1 < len(words) else ""
            return f"{previous} {word}" if previous.isalpha() and len(previous) > 2 else word
    return quantity


def alert_readings(metrics: dict[str, float], labels: dict[str, str], message: str | None) -> list[Reading]:
    """Return every reading of an alert: its metrics first, then what its message states."""
    readings = from_metrics(metrics, labels)
    nominal = next((r.nominal for r in readings if r.nominal is not None), None) or _nominal(metrics, labels)
    for reading in from_text(message):
        if reading.metric == "voltage_v" and nominal is not None:
            reading = Reading(**{**reading.__dict__, "nominal": nominal})
        readings.append(reading)
    return readings
