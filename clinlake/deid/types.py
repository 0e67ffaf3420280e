"""PHI label set (MEDDOCAN) and the Span every detector returns."""

from __future__ import annotations

from dataclasses import dataclass

# The 21 labels that occur in MEDDOCAN train (exact strings from the .ann files), most frequent first.
MEDDOCAN_TYPES: tuple[str, ...] = (
    "TERRITORIO",
    "FECHAS",
    "EDAD_SUJETO_ASISTENCIA",
    "NOMBRE_SUJETO_ASISTENCIA",
    "NOMBRE_PERSONAL_SANITARIO",
    "SEXO_SUJETO_ASISTENCIA",
    "CALLE",
    "PAIS",
    "ID_SUJETO_ASISTENCIA",
    "ID_TITULACION_PERSONAL_SANITARIO",
    "CORREO_ELECTRONICO",
    "ID_ASEGURAMIENTO",
    "HOSPITAL",
    "FAMILIARES_SUJETO_ASISTENCIA",
    "INSTITUCION",
    "ID_CONTACTO_ASISTENCIAL",
    "NUMERO_TELEFONO",
    "PROFESION",
    "NUMERO_FAX",
    "OTROS_SUJETO_ASISTENCIA",
    "CENTRO_SALUD",
)

# The MEDDOCAN guidelines define 29 types; these 8 are absent from train (dev has one ID_EMPLEO span).
# Rules use some of them (URL_WEB, DIRECCION_IP, OTRO_NUMERO_IDENTIF for IBAN) because no train label fits.
GUIDELINE_EXTRA_TYPES: tuple[str, ...] = (
    "ID_EMPLEO_PERSONAL_SANITARIO",
    "URL_WEB",
    "DIRECCION_IP",
    "OTRO_NUMERO_IDENTIF",
    "NUMERO_BENEF_PLAN_SALUD",
    "IDENTIF_VEHICULOS_NRSERIE_PLACAS",
    "IDENTIF_DISPOSITIVOS_NRSERIE",
    "IDENTIF_BIOMETRICOS",
)

ALL_PHI_TYPES: tuple[str, ...] = MEDDOCAN_TYPES + GUIDELINE_EXTRA_TYPES


@dataclass(frozen=True, order=True)
class Span:
    """A detected PHI span: character offsets into the note (end exclusive), label, detector and score.

    ``validated`` marks a structured identifier whose form was proven (check digit/letter, mod-97, or an
    unambiguous syntax such as an e-mail address); the merge policy lets such spans win (see merge.py).
    ``detector`` is ``"<family>:<name>"`` (``rule:dni``, ``model:ner``); the family decides merge priority.
    """

    start: int
    end: int
    label: str
    detector: str
    score: float = 1.0
    validated: bool = False

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"bad span offsets ({self.start}, {self.end})")

    @property
    def length(self) -> int:
        """Number of characters covered."""
        return self.end - self.start

    @property
    def family(self) -> str:
        """Detector family, the part of ``detector`` before the first colon (``rule``, ``model``)."""
        return self.detector.split(":", 1)[0]
