"""Lab value normalisation (CS-10): one unit per analyte, so that a history reads as one series.

A small explicit table, not ``pint`` (ADR 0013): the units met are a few UCUM codes (``g/L``,
``mg/dL``, ``umol/L``…), which pint does not parse as UCUM (``[IU]``, ``{1.73_m2}``, ``l`` vs ``L``);
the conversions that matter are analyte-specific (a mass concentration becomes a molar one only
through the analyte's molar mass, HbA1c % ↔ mmol/mol through the IFCC line), which pint cannot
know; and a table of twenty lines reads and tests better than a dependency.

Pure: no database, no FHIR. ``normalise`` takes a LOINC code and a value as written and says what
it becomes, or why it stays as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from math import floor, log10

# UCUM code → (dimension, factor to the dimension's base unit: g/L, mmol/L, %, mmol/mol).
_UNITS: dict[str, tuple[str, float]] = {
    "g/L": ("mass", 1.0),
    "g/dL": ("mass", 10.0),
    "mg/dL": ("mass", 0.01),
    "mg/L": ("mass", 0.001),
    "mg/mL": ("mass", 1.0),
    "ug/mL": ("mass", 0.001),
    "mol/L": ("molar", 1000.0),
    "mmol/L": ("molar", 1.0),
    "umol/L": ("molar", 0.001),
    "nmol/L": ("molar", 0.000001),
    "%": ("fraction", 1.0),
    "mmol/mol": ("ratio", 1.0),
}
# Spellings met in documents for the same UCUM code (UCUM itself accepts ``l`` for the litre).
_ALIASES = {"µmol/L": "umol/L", "μmol/L": "umol/L", "µg/mL": "ug/mL", "μg/mL": "ug/mL"}


@dataclass(frozen=True)
class Analyte:
    key: str
    label: str  # French, for the synthesis
    unit: str  # the unit the synthesis shows every value of this analyte in
    molar_mass: float | None = None  # g/mol, for mass ↔ molar concentration


GLUCOSE = Analyte("glucose", "Glycémie", "g/L", 180.16)
CREATININE = Analyte("creatinine", "Créatininémie", "umol/L", 113.12)
CHOLESTEROL = Analyte("cholesterol", "Cholestérol total", "g/L", 386.65)
HDL = Analyte("cholesterol-hdl", "Cholestérol HDL", "g/L", 386.65)
LDL = Analyte("cholesterol-ldl", "Cholestérol LDL", "g/L", 386.65)
TRIGLYCERIDES = Analyte("triglycerides", "Triglycérides", "g/L", 885.7)  # as trioleine, the lab convention
HBA1C = Analyte("hba1c", "Hémoglobine glyquée (HbA1c)", "%")

# LOINC code → (analyte, the unit a value under this code is normalised to). Each code keeps the
# unit of its own LOINC property (a [Mass/Volume] code in g/L, a [Moles/Volume] code in mmol/L), so
# that an Observation's value never contradicts its code; the synthesis groups codes by analyte.
LOINC: dict[str, tuple[Analyte, str]] = {
    "2345-7": (GLUCOSE, "g/L"),  # Glucose [Mass/volume] in Serum or Plasma
    "2339-0": (GLUCOSE, "g/L"),  # … in Blood
    "53049-3": (GLUCOSE, "g/L"),  # … fasting
    "14749-6": (GLUCOSE, "mmol/L"),  # Glucose [Moles/volume] in Serum or Plasma
    "15074-8": (GLUCOSE, "mmol/L"),  # … in Blood
    "14771-0": (GLUCOSE, "mmol/L"),  # … fasting
    "2160-0": (CREATININE, "mg/L"),  # Creatinine [Mass/volume] in Serum or Plasma
    "14682-9": (CREATININE, "umol/L"),  # Creatinine [Moles/volume] in Serum or Plasma
    "2093-3": (CHOLESTEROL, "g/L"),
    "14647-2": (CHOLESTEROL, "mmol/L"),
    "2085-9": (HDL, "g/L"),
    "14646-4": (HDL, "mmol/L"),
    "13457-7": (LDL, "g/L"),  # calculated
    "2089-1": (LDL, "g/L"),
    "22748-8": (LDL, "mmol/L"),
    "39469-2": (LDL, "mmol/L"),  # calculated
    "2571-8": (TRIGLYCERIDES, "g/L"),
    "14927-8": (TRIGLYCERIDES, "mmol/L"),
    "4548-4": (HBA1C, "%"),  # Hemoglobin A1c/Hemoglobin.total in Blood
    "17856-6": (HBA1C, "%"),  # … by HPLC
    "59261-8": (HBA1C, "mmol/mol"),  # … IFCC
}


@dataclass(frozen=True)
class Normalised:
    value: float
    unit: str  # UCUM
    converted: bool  # False: left as written
    reason: str | None = None  # French, why it was left as written


def ucum(unit: str | None) -> str | None:
    """The UCUM code this table knows ``unit`` by (None: unknown here)."""
    if unit is None:
        return None
    unit = _ALIASES.get(unit, unit)
    if unit in _UNITS:
        return unit
    if unit.endswith("l"):  # ``mg/dl``: UCUM's lower-case litre
        upper = unit[:-1] + "L"
        return upper if upper in _UNITS else None
    return None


def _hba1c(value: float, source: str, target: str) -> float | None:
    """IFCC master equation: mmol/mol = (NGSP % − 2.15) × 10.929."""
    if source == "fraction" and target == "ratio":
        return (value - 2.15) * 10.929
    if source == "ratio" and target == "fraction":
        return value / 10.929 + 2.15
    return None


def convert(value: float, source: str, target: str, analyte: Analyte | None = None) -> float | None:
    """``value`` in UCUM ``source`` expressed in ``target``; None when not convertible (unknown
    unit, another dimension without the analyte's molar mass or formula)."""
    s, t = ucum(source), ucum(target)
    if s is None or t is None:
        return None
    (sdim, sfactor), (tdim, tfactor) = _UNITS[s], _UNITS[t]
    base = value * sfactor  # in the source dimension's base unit
    found = base if sdim == tdim else _across(base, sdim, tdim, analyte)
    return None if found is None else found / tfactor


def _across(base: float, sdim: str, tdim: str, analyte: Analyte | None) -> float | None:
    """A base-unit value of one dimension in another's base unit, through what the analyte is."""
    if analyte is HBA1C:
        return _hba1c(base, sdim, tdim)
    if analyte is None or analyte.molar_mass is None:
        return None
    if sdim == "mass" and tdim == "molar":  # g/L ÷ g/mol = mol/L = 1000 mmol/L
        return base / analyte.molar_mass * 1000
    if sdim == "molar" and tdim == "mass":
        return base / 1000 * analyte.molar_mass
    return None


def significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (a conversion invents no precision)."""
    if value == 0:
        return 0.0
    return round(value, max(0, digits - 1 - floor(log10(abs(value)))))


def _digits(written: str) -> int:
    """Significant digits of a decimal as written (``7.30`` → 3, ``83`` → 2), at least 3."""
    try:
        return max(3, len(Decimal(written).normalize().as_tuple().digits))
    except ArithmeticError:
        return 3


def analyte_of(loinc: str | None) -> Analyte | None:
    found = LOINC.get(loinc or "")
    return found[0] if found else None


def to_unit(value: float, written: str, unit: str | None, target: str, analyte: Analyte | None) -> Normalised:
    """``value`` (written ``written``, in ``unit``) in ``target``, or left as written with the reason."""
    if unit is None:
        return Normalised(value, "", False, "valeur sans unité")
    known = ucum(unit)
    if known == target:
        return Normalised(value, target, False)
    if known is None:
        return Normalised(value, unit, False, f"unité « {unit[:30]} » non reconnue : valeur telle qu'écrite")
    found = convert(value, known, target, analyte)
    if found is None:
        return Normalised(value, unit, False, f"unité « {unit[:30]} » non convertible en {target}")
    return Normalised(significant(found, _digits(written)), target, True)


def normalise(loinc: str | None, written: str, unit: str | None) -> Normalised:
    """A lab value under LOINC ``loinc`` in its code's unit (``LOINC``), or as written with the reason
    (an analyte this table does not know, a unit it cannot convert)."""
    value = float(written)
    found = LOINC.get(loinc or "")
    if found is None:
        return Normalised(value, unit or "", False, "analyte sans unité de référence : tel qu'écrit")
    analyte, target = found
    return to_unit(value, written, unit, target, analyte)
