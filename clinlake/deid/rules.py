"""Rule matchers for structured PHI in Spanish clinical text, labelled and bounded as MEDDOCAN annotates them.

Span conventions taken from MEDDOCAN train (see docs/deid.md): an age is ``"70 años"`` (number plus unit, without
``"de edad"``); a date is the whole expression (``"03/03/1946"``, ``"marzo de 2005"``, ``"año 2004"``, a bare
``"2003"``); header values exclude the field name (``"NHC: 368503"`` -> ``"368503"``); a postal code keeps an ``E-``
prefix (``"E-47005"``). All regexes are compiled at import and are linear (no nested unbounded repetition), so a
1 MB note costs milliseconds per matcher.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable

from stdnum import iban as _iban
from stdnum.es import dni as _dni
from stdnum.es import nie as _nie

from clinlake.deid.types import Span

I = re.IGNORECASE  # noqa: E741 - short alias keeps the pattern table readable

# ---------------------------------------------------------------------------------------------- shared pieces
MONTHS = (
    "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
    "septiembre", "octubre", "noviembre", "diciembre",
)  # fmt: skip
MONTH_ABBR = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")
# month name or abbreviation (lower-case) -> month number; "setiembre"/"sept"/"set" are common variants
MONTH_NUMBER: dict[str, int] = {m: i + 1 for i, m in enumerate(MONTHS)}
MONTH_NUMBER.update({a: i + 1 for i, a in enumerate(MONTH_ABBR)})
MONTH_NUMBER.update({"setiembre": 9, "sept": 9, "set": 9})

_MONTH = r"(?:enero|febrero|marzo|abril|mayo|junio|julio|agosto|se(?:p)?tiembre|octubre|noviembre|diciembre)"
_MON_ANY = r"(?:" + _MONTH[3:-1] + r"|ene|feb|mar|abr|may|jun|jul|ago|sept?|set|oct|nov|dic)"
_D = r"(?:[12]\d|3[01]|0?[1-9])"
_M = r"(?:1[0-2]|0?[1-9])"
_Y4 = r"(?:1[89]\d\d|20\d\d)"
_BARE_YEAR = r"(?:19\d\d|20[0-3]\d)"
# units and words after a number that make a 4-digit number a quantity rather than a year
_QTY_AFTER = (
    r"\s*(?:mg|g\b|gr|ml|mL|l\b|cc|kg|UI|U\b|mcg|µg|ug|mm|cm|ng|pg|µl|ul|mEq|mmol|%|x\b|/|células|cel|"
    r"leucocitos|plaquetas|copias|pacientes|casos|gramos|metros|kcal|lpm|rpm)"
)

NUMBER_WORDS: dict[str, int] = {
    "un": 1, "una": 1, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciséis": 16, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20,
    "veintiuno": 21, "veintiún": 21, "veintiun": 21, "veintidós": 22, "veintidos": 22, "veintitrés": 23,
    "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiséis": 26, "veintiseis": 26,
    "veintisiete": 27, "veintiocho": 28, "veintinueve": 29, "treinta": 30, "cuarenta": 40, "cincuenta": 50,
    "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100,
}  # fmt: skip
_UNITS_WORD = r"(?:un|uno|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve)"
_NUMWORD = (
    r"(?:(?:treinta|cuarenta|cincuenta|sesenta|setenta|ochenta|noventa)(?:\s+y\s+" + _UNITS_WORD + r")?|"
    r"veinti(?:uno|ún|un|dós|dos|trés|tres|cuatro|cinco|séis|seis|siete|ocho|nueve)|"
    r"dieci(?:séis|seis|siete|ocho|nueve)|diez|once|doce|trece|catorce|quince|veinte|cien(?:to)?|"
    + _UNITS_WORD[3:-1] + r")"
)
_AGE_NUM = r"(?:\d{1,3}|" + _NUMWORD + r")"
_AGE_UNIT = r"(?:años|año|meses|mes|semanas|semana|días|dias|día|dia)"
_AGE_QTY = (
    _AGE_NUM + r"\s*" + _AGE_UNIT
    + r"(?:\s+y\s+(?:medio|" + _AGE_NUM + r"\s+(?:meses|mes|semanas|días|dias)))?"
)  # fmt: skip
_SUBJECT = (
    r"(?:paciente|varón|varon|mujer|hombre|niña|niño|nina|nino|lactante|neonato|recién\s+nacid[oa]|"
    r"adolescente|joven|femenin[oa]|masculin[oa]|gestante|chic[oa]|ancian[oa]|bebé|caucásic[oa]|"
    r"caucasian[oa]|negr[oa]|negroide|señora|señor|sra\.|sr\.)"
)
_SEX_WORD = r"(?:varón|varon|mujer|hombre|niña|niño|femenino|masculino|femenina|masculina)"
# words that end a name in a signature line ("Dr. X Y Servicio de Urología", "X Y C/ Mayor 3")
_NON_NAME_WORDS = (
    r"(?:Servicio|Hospital|Calle|Avda|Avenida|Plaza|Paseo|Pza|Residente|Unidad|Departamento|Secci[oó]n|"
    r"Centro|Cl[ií]nica|Instituto|Fundaci[oó]n|Universidad|Facultad|Complejo|Ctra|Carretera|Camino|Ronda|"
    r"Urb|N[ºo°]\s*Col|Email|E-mail|Correos?|Tel|Tfno|Fax|Informe|Sexo|Edad|NHC|Av|Avd|Apartado|Direcci[oó]n|"
    r"Supervisora?|Jefe|Jefa|Institut|Paciente|"
    # a title or a department after the name starts another thing ("... Doctor Vertiz 737", "... Profesor Martín
    # Lagos" are streets; "... Oncología Médica", "... Grupo de Nefrología" units): none is ever inside a MEDDOCAN
    # train name
    r"Doctora?|Profesora?|Pz|Pl|Grupo|Comunidad|Urbanizaci[oó]n|Departament|Servicios|Medicina|"
    r"Cirug[ií]a|Pediatr[ií]a|[A-ZÁÉÍÓÚ]\w*log[ií]a)"
)
_NOT_NAME = r"(?!" + _NON_NAME_WORDS + r"\b)"
# one of those words standing alone inside a longer span (merge.cut_names_at_non_names)
NON_NAME_WORD = re.compile(r"(?<![\w.])" + _NON_NAME_WORDS + r"\b")
# A period belongs to a name only after an initial ("Pablo L. Guzmán"): "Navarro. Av. San Antonio" is a name, then
# an address. An initial needs a name after it ("Nikolaos Antoniadis P. Departamento de ..." ends at "Antoniadis"),
# a word without a period two letters ("... P" is not a name part), and "M.a" / "Mª" (María) is one token.
_NAME_TOKEN = _NOT_NAME + (r"(?:M(?:\.[aª]|ª)(?=[ \t])"
                           r"|[A-ZÁÉÍÓÚÑÜ]\.(?=[ \t]+" + _NOT_NAME + r"[A-ZÁÉÍÓÚÑÜ])"
                           r"|[A-ZÁÉÍÓÚÑÜ][\wÁÉÍÓÚÑÜáéíóúñü'’-]+)(?![/\w])")
_NAME_PARTICLE = r"(?:de|del|la|las|los|y|i|da|dos|van|von|el)"
_NAME = _NAME_TOKEN + r"(?:[ \t]+(?:" + _NAME_PARTICLE + r"[ \t]+)*" + _NAME_TOKEN + r")*"


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile a pattern once at import."""
    return re.compile(pattern, flags)


# ------------------------------------------------------------------------------------------ identifiers
DNI_RE = _c(r"(?<![\w-])(?P<num>[XYZxyz][- ]?\d{7}|\d{8})[- ]?(?P<letter>[A-Za-z])(?![\w])")
DNI_CONTEXT_RE = _c(r"\b(?:DNI|D\.N\.I\.?|NIE|N\.I\.E\.?|NIF|N\.I\.F\.?|documento)\b[^\n\d]{0,20}$", I)

NSS_CONTEXT_RE = _c(
    r"\b(?:NASS|NSS|N\.A\.S\.S\.|n[ºo°.]*\s*(?:de\s+)?(?:la\s+)?(?:afiliaci[oó]n|seguridad\s+social)|"
    r"n[úu]mero\s+de\s+(?:la\s+)?(?:afiliaci[oó]n|seguridad\s+social))\s*[:.]?\s*"
    r"(?P<val>\d[\d]*(?:[ /-]\d+){0,3})",
    I,
)
NSS_BARE_RE = _c(r"(?<![\d/.,-])(?P<val>\d{2}[ /-]?\d{8}[ /-]?\d{2})(?![\d]|[.,]\d)")

# value of a header identifier: digits/letters joined by single separators, e.g. "22 75689632 36", "A-12345"
_ID_VALUE = r"(?P<val>(?:[A-Za-z]{1,4}-?)?\d+(?:[ ./-]?\d+){0,6}(?:/[0-9A-Za-z]+)?)"
RECORD_RES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (_c(r"\b(?:NHC|N\.H\.C\.|CIPA|CIP|n[ºo°.]*\s*(?:de\s+)?historia(?:\s+cl[ií]nica)?|historia\s+cl[ií]nica"
        r"(?:\s+n[ºo°.]*)?|HC)(?![a-zA-Z])\s*[:.#]?\s*(?:nº\s*)?(?:nhc\s*[-:]?\s*)?" + _ID_VALUE, I),
     "ID_SUJETO_ASISTENCIA", "rule:nhc"),  # the cue is a whole word: "HCO3 25" is bicarbonate
    (_c(r"\b(?:n[ºo°.]*\s*(?:de\s+)?)?episodio(?:\s+n[ºo°.]*)?\s*[:.#]?\s*" + _ID_VALUE, I),
     "ID_CONTACTO_ASISTENCIAL", "rule:episode"),
    (_c(r"\b(?:N[ºo°.]*\s*Col(?:egiado)?\.?|n[úu]mero\s+de\s+colegiado|colegiad[oa]\s+n[ºo°.]*)\s*[:.]?\s*"
        r"(?P<val>\d{2}[ -]\d{2}[ -]\d{5}|\d{2}-\d{2}-\d{5}|\d{4,10})", I),
     "ID_TITULACION_PERSONAL_SANITARIO", "rule:colegiado"),
)  # fmt: skip

PHONE_RE = _c(
    r"(?<![\w.,/+-])(?:\+\s?)?(?P<val>(?:(?:00\s?)?34[\s.-]?|\(\+?34\)\s?)?[6789](?:[ .-]?\d){8})(?![\d]|[.,]\d)"
)  # the "+" of "+34" stays outside the span, as in MEDDOCAN (train: 0 of 73 phone and fax spans start with it)
FAX_CONTEXT_RE = _c(r"(?:fax|telefax)[^\d\n]{0,12}$", I)
PHONE_CONTEXT_RE = _c(r"(?:tel[ée]?f?o?n?o?|tfno|telf|móvil|movil|tlf)[^\d\n]{0,12}$", I)

EMAIL_RE = _c(r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62})@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")
URL_RE = _c(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'()\[\]]{2,2000}", I)
IPV4_RE = _c(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)")
IBAN_RE = _c(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b")

_CP = r"(?:0[1-9]|[1-4]\d|5[0-2])\d{3}"
POSTAL_RES: tuple[re.Pattern[str], ...] = (
    # "CP: 28016", "C.P. 28016", "código postal 28016"
    _c(r"\b(?:C\.?\s?P\.?|c[óo]digo\s+postal)\s*[:.]?\s*(?P<val>" + _CP + r")(?!\d)", I),
    # "E-47005 Valladolid" (span keeps the country prefix, as MEDDOCAN does)
    _c(r"(?<![\w-])(?P<val>E[- ]" + _CP + r")(?!\d)"),
    # "28036 Madrid": a code followed by a capitalised place name
    _c(r"(?<![\d\w/.,:-])(?<!N[ºo°]Col: )(?P<val>" + _CP + r")(?!\d)(?=,?[ \t]+\(?[A-ZÁÉÍÓÚÑ][a-záéíóúñ])"),
)

# ------------------------------------------------------------------------------------------------ dates
DATE_RES: tuple[re.Pattern[str], ...] = (
    # 03/03/2016, 3-3-16, 3.3.2016, 05/4/2017, "12/12 /2016"
    _c(r"(?<![\d/.,-])" + _D + r"\s?(?P<sep>[/.-])\s?" + _M + r"\s?(?P=sep)\s?(?:" + _Y4 + r"|\d{2})(?![\d/]|[.,]\d)"),
    # ISO 2016-03-03
    _c(r"(?<![\d/.-])" + _Y4 + r"-" + _M + r"-" + _D + r"(?![\d])"),
    # 03/2016 (two-digit month only, so dilutions like 1/2000 stay out)
    _c(r"(?<![\d/.,-])(?:0[1-9]|1[0-2])/" + _Y4 + r"(?![\d/])"),
    # 3 de marzo de 2016, 3 de marzo del 2016, 3 de marzo, 1º de mayo
    _c(r"\b(?:" + _D + r"|1\.?º|primero)\s+de\s+" + _MONTH + r"(?:\s+(?:de|del)\s+(?:año\s+)?" + _Y4 + r")?\b", I),
    # 3 marzo 2016, 12-mar-2016, 12 mar. 2016
    _c(r"\b" + _D + r"(?:\s+|\s?[-/]\s?)" + _MON_ANY + r"\.?(?:\s+|\s?[-/]\s?)(?:" + _Y4 + r"|\d{2})\b", I),
    # marzo de 2016, marzo del 2016, marzo del año 2016, marzo 2016
    _c(r"\b" + _MONTH + r"(?:\s+(?:de|del)(?:\s+año)?)?\s+" + _Y4 + r"\b", I),
    # "enero-04", "diciembre-2002"
    _c(r"\b" + _MONTH + r"-(?:" + _Y4 + r"|\d{2})\b", I),
    # año 2004 (MEDDOCAN keeps "año" in the span)
    _c(r"\baño\s+" + _Y4 + r"\b", I),
    # bare year, unless it is a quantity ("2000 mg") or glued to letters ("modelo SRV2007", "maje1946@..."): none of
    # MEDDOCAN train's dates follows a letter
    _c(r"(?<![\w.,/:+-])" + _BARE_YEAR + r"(?![\d]|[.,]\d|-\d|" + _QTY_AFTER + r")"),
    # a month alone after a preposition: "en marzo", "desde octubre"
    _c(r"\b(?:en|desde|hasta|durante|finales\s+de|principios\s+de|mediados\s+de)\s+(?P<val>" + _MONTH
       + r")\b(?!\s+(?:de|del)?\s*\d)", I),
)

# ------------------------------------------------------------------------------------------------- ages
AGE_RES: tuple[re.Pattern[str], ...] = (
    # header "Edad: 70 años" / "Edad: 22"
    _c(r"\bEdad\s*:\s*(?P<val>" + _AGE_QTY + r"|\d{1,3}(?:\s*a\b\.?)?)", I),
    # "varón de 45 años", "mujer, de 3 meses", "paciente de 70 años"
    _c(r"\b" + _SUBJECT + r"\s*,?\s+(?:de\s+(?:edad\s+(?:de\s+)?)?|con\s+|edad\s+)(?P<val>" + _AGE_QTY + r")", I),
    # "tenía 45 años", "contaba con 3 años", "edad de 45 años"
    _c(r"\b(?:tenía|tiene|contaba\s+con|cumplidos|con\s+una\s+edad\s+de|edad\s+de)\s+(?P<val>" + _AGE_QTY + r")", I),
    # "45 años de edad" (span without "de edad")
    _c(r"(?<![\d,.])(?P<val>" + _AGE_QTY + r")(?=\s+de\s+edad\b)", I),
    # "a los 45 años" (age at an event)
    _c(r"\b(?:a|desde|hasta)\s+los\s+(?P<val>" + _AGE_NUM + r"\s+años)(?!\s+(?:de\s+(?:la|su|el|evoluci|seguim|tratam)|del\b))", I),
)  # fmt: skip

SEX_RES: tuple[re.Pattern[str], ...] = (
    _c(r"\bSexo\s*:[ \t]*(?P<val>[A-Za-zÁÉÍÓÚáéíóúñÑ]+)", I),
    _c(r"\b(?:de\s+)?sexo\s+(?P<val>femenino|masculino|mujer|varón|hombre)\b", I),
    # the patient mention before an age: "Varón de 45 años", "mujer, de 3 meses"
    _c(r"(?P<val>\b" + _SEX_WORD + r")(?=\s*,?\s+(?:de\s+)?" + _AGE_NUM + r"\s*" + _AGE_UNIT + r")", I),
)

# template headers of discharge reports ("Nombre: X", "Médico: Dr. Y"): value up to end of line or a period
# "Dr René Salas" without the period too (5 train headers)
_TITLE = r"(?:(?i:Doctora|Doctor)[ \t]+|(?i:Dra|Dr|Dña|Dª|D)\s*[.:]\s*|(?:Dra|Dr|DRA|DR)[ \t]+)?"
HEADER_RES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (_c(r"(?m)^\W{0,2}(?i:Nombre)\s*:[ \t]*(?P<val>" + _NAME + r")"), "NOMBRE_SUJETO_ASISTENCIA", "rule:header"),
    (_c(r"(?m)^\W{0,2}(?i:Apellidos)\s*:[ \t]*(?P<val>" + _NAME + r")"), "NOMBRE_SUJETO_ASISTENCIA", "rule:header"),
    (_c(r"\b(?i:M[ée]dico|Remitido\s+por|Responsable\s+cl[íi]nico|Facultativo|Firmado(?:\s+por)?)\s*:[ \t]*"
        + _TITLE + r"(?P<val>" + _NAME + r")"), "NOMBRE_PERSONAL_SANITARIO", "rule:header"),
    (_c(r"(?m)\bDomicilio\s*:[ \t]*(?P<val>[^\n]*?)(?=\.?[ \t]*$)", I), "CALLE", "rule:header"),
    (_c(r"(?m)\bLocalidad\s*/?\s*(?:Provincia)?\s*:[ \t]*(?P<val>[^\n]*?)(?=\s*\.?[ \t]*$)", I), "TERRITORIO",
     "rule:header"),
    (_c(r"(?m)\bPa[íi]s(?:\s+de\s+(?:nacimiento|origen))?\s*:[ \t]*(?P<val>[^\n]*?)(?=\s*\.?[ \t]*$)", I), "PAIS",
     "rule:header"),
)  # fmt: skip
# "Edad: 70 años Sexo: H." - a header value must not swallow the next field
_HEADER_STOP = re.compile(r"\s*N[ºo°]\s*Col\b.*$|\s+(?:E-?mail|Sexo|Edad|NHC|NASS|CP)\b.*$|[\s.,;]+$", I | re.S)
# "Localidad/ Provincia: Alcalá de Guadaíra, Sevilla." names two places, and MEDDOCAN annotates each one: a place
# list is cut at commas, semicolons, parentheses, slashes, " - " and ". " (495 of 499 such headers in train).
_PLACE_SEP = re.compile(r"\s*(?:[,;()/]|\s-\s|\.\s)\s*")
_SPLIT_LABELS = frozenset({"TERRITORIO"})


def _place_pieces(start: int, value: str) -> list[tuple[int, int]]:
    """(start, end) of each place in a header value listing several; trailing periods and spaces dropped."""
    out, pos = [], 0
    for m in [*_PLACE_SEP.finditer(value), None]:
        end = m.start() if m else len(value)
        piece = value[pos:end].rstrip(" .")
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((start + pos + lead, start + pos + len(piece)))
        pos = m.end() if m else pos
    return out


# ------------------------------------------------------------------------------------------- validators
def dni_nie_valid(value: str) -> bool:
    """True when a DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter) has the right mod-23 letter."""
    v = re.sub(r"[\s-]", "", value).upper()
    return _dni.is_valid(v) if v[:1].isdigit() else _nie.is_valid(v)


def nss_valid(value: str) -> bool:
    """True for a 12-digit Spanish social security number whose 2 control digits match (mod 97)."""
    digits = re.sub(r"\D", "", value)
    if len(digits) != 12:
        return False
    province, number, control = int(digits[:2]), int(digits[2:10]), int(digits[10:])
    # the official rule: numbers below 10^7 are read as province*10^7 + number, otherwise the 10-digit string
    base = number + province * 10**7 if number < 10**7 else int(digits[:10])
    return base % 97 == control


def iban_valid(value: str) -> bool:
    """True when an IBAN passes the country length and mod-97 checks (python-stdnum)."""
    return bool(_iban.is_valid(value))


def spanish_number(text: str) -> int | None:
    """Parse '45', 'siete', 'sesenta y tres' into an int; None when it is not a number."""
    t = text.strip().lower()
    if t.isdigit():
        return int(t)
    total = 0
    for part in re.split(r"\s+y\s+", t):
        if part not in NUMBER_WORDS:
            return None
        total += NUMBER_WORDS[part]
    return total


# ----------------------------------------------------------------------------------------------- matchers
def _span(m: re.Match[str], label: str, detector: str, group: str | int = 0, **kw: object) -> Span:
    """A Span over a regex match (or one named group of it)."""
    return Span(m.start(group), m.end(group), label, detector, **kw)  # type: ignore[arg-type]


def find_dni_nie(text: str) -> list[Span]:
    """DNI/NIE with a valid check letter (validated); with a wrong letter only after a 'DNI'/'NIE' cue."""
    out = []
    for m in DNI_RE.finditer(text):
        if dni_nie_valid(m.group(0)):
            out.append(_span(m, "ID_SUJETO_ASISTENCIA", "rule:dni", validated=True))
        elif DNI_CONTEXT_RE.search(text, max(0, m.start() - 30), m.start()):
            out.append(_span(m, "ID_SUJETO_ASISTENCIA", "rule:dni", score=0.8))
    return out


def find_nss(text: str) -> list[Span]:
    """Social security numbers: after a NASS/NSS cue (any digits), or bare 12 digits with valid control."""
    out = [_span(m, "ID_ASEGURAMIENTO", "rule:nss", "val", validated=nss_valid(m.group("val")))
           for m in NSS_CONTEXT_RE.finditer(text)]  # fmt: skip
    out += [_span(m, "ID_ASEGURAMIENTO", "rule:nss", "val", validated=True)
            for m in NSS_BARE_RE.finditer(text) if nss_valid(m.group("val"))]  # fmt: skip
    return out


def find_record_numbers(text: str) -> list[Span]:
    """Medical record (NHC, CIPA, nº de historia), episode and collegiate numbers after their cue words."""
    out = []
    for rx, label, det in RECORD_RES:
        for m in rx.finditer(text):
            s, e = m.span("val")
            val = text[s:e].rstrip("./-")
            out.append(Span(s, s + len(val), label, det, 0.95))
    return out


def find_phones(text: str) -> list[Span]:
    """Spanish phone/fax numbers (+34/0034, 6xx/7xx/8xx/9xx, spaces, dots or dashes); 'fax' cue -> NUMERO_FAX."""
    out = []
    for m in PHONE_RE.finditer(text):
        left = text[max(0, m.start() - 25) : m.start()]
        fax = FAX_CONTEXT_RE.search(left)
        tel = PHONE_CONTEXT_RE.search(left)
        is_fax = fax is not None and (tel is None or fax.start() > tel.start())
        out.append(_span(m, "NUMERO_FAX" if is_fax else "NUMERO_TELEFONO", "rule:phone", "val", score=0.9))
    return out


def find_emails(text: str) -> list[Span]:
    """E-mail addresses (syntax is unambiguous, so validated); a trailing period is left out."""
    out = []
    for m in EMAIL_RE.finditer(text):
        out.append(Span(m.start(), m.start() + len(m.group(0).rstrip(".-")), "CORREO_ELECTRONICO", "rule:email",
                        validated=True))  # fmt: skip
    return out


def find_urls(text: str) -> list[Span]:
    """http(s)/ftp/www URLs, without trailing punctuation."""
    out = []
    for m in URL_RE.finditer(text):
        val = m.group(0).rstrip(".,;:!?")
        out.append(Span(m.start(), m.start() + len(val), "URL_WEB", "rule:url", validated=True))
    return out


def find_ips(text: str) -> list[Span]:
    """IPv4 addresses whose octets are all <= 255 (checked with ipaddress)."""
    out = []
    for m in IPV4_RE.finditer(text):
        try:
            ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        out.append(_span(m, "DIRECCION_IP", "rule:ip", validated=True))
    return out


def find_ibans(text: str) -> list[Span]:
    """IBANs that pass the mod-97 check (labelled OTRO_NUMERO_IDENTIF, the guidelines' bank-account type)."""
    return [_span(m, "OTRO_NUMERO_IDENTIF", "rule:iban", validated=True)
            for m in IBAN_RE.finditer(text) if iban_valid(m.group(0))]  # fmt: skip


def find_postal_codes(text: str) -> list[Span]:
    """Spanish postal codes 01000-52999 with context (CP:, E- prefix, or followed by a place name)."""
    return [_span(m, "TERRITORIO", "rule:postal", "val", score=0.85) for rx in POSTAL_RES for m in rx.finditer(text)]


def _longest_first(spans: Iterable[Span]) -> list[Span]:
    """Drop spans overlapping a longer one from the same matcher family (keeps the full date expression)."""
    starts: list[int] = []
    kept: list[Span] = []  # sorted by start, disjoint, so only the two neighbours of an insert point can overlap
    for s in sorted(spans, key=lambda x: (-x.length, x.start)):
        i = bisect.bisect_left(starts, s.start)
        if i > 0 and kept[i - 1].end > s.start:
            continue
        if i < len(kept) and kept[i].start < s.end:
            continue
        starts.insert(i, s.start)
        kept.insert(i, s)
    return kept


def _valid_numeric_date(value: str) -> bool:
    """Reject impossible day/month combinations such as 31/02."""
    from clinlake.deid.dates import parse_date  # local import: dates imports this module's tables

    return parse_date(value) is not None


def find_dates(text: str) -> list[Span]:
    """Dates in every Spanish surface form MEDDOCAN annotates (numeric, textual, month-year, year)."""
    found = []
    for rx in DATE_RES:
        for m in rx.finditer(text):
            if m.group(0)[:1].isdigit() and not _valid_numeric_date(m.group(0)):
                continue
            score = 0.7 if rx is DATE_RES[8] else 0.95  # a bare year is the weakest signal
            group = "val" if "val" in rx.groupindex else 0
            found.append(_span(m, "FECHAS", "rule:date", group, score=score))
    return _longest_first(found)


# ages and sex patterns start with long word alternations that Python's re tries at every position; they only
# run in windows around a cheap anchor (a unit word, "edad", "sexo"), which keeps a 1 MB note fast
_AGE_ANCHOR = _c(r"(?:años|año|mes|semana|días|dias|día|dia|edad|sexo)", I)
_WINDOW = 120


def _windows(text: str, anchor: re.Pattern[str], pad: int = _WINDOW) -> list[tuple[int, int]]:
    """Disjoint (start, end) windows of +-pad characters around each anchor match."""
    out: list[tuple[int, int]] = []
    for m in anchor.finditer(text):
        s, e = max(0, m.start() - pad), min(len(text), m.end() + pad)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _windowed(text: str, patterns: Iterable[re.Pattern[str]]) -> Iterable[re.Match[str]]:
    """Matches of patterns inside the anchor windows (offsets stay relative to the whole text)."""
    wins = _windows(text, _AGE_ANCHOR)
    for rx in patterns:
        for s, e in wins:
            yield from rx.finditer(text, s, e)


def find_ages(text: str) -> list[Span]:
    """Ages of the patient: 'Edad: 70 años', 'varón de 45 años', '45 años de edad', 'a los 45 años'."""
    return _longest_first(_span(m, "EDAD_SUJETO_ASISTENCIA", "rule:age", "val", score=0.9)
                          for m in _windowed(text, AGE_RES))  # fmt: skip


def find_sex(text: str) -> list[Span]:
    """Sex of the patient: 'Sexo: H', 'sexo femenino', 'Varón de 45 años'."""
    return _longest_first(_span(m, "SEXO_SUJETO_ASISTENCIA", "rule:sex", "val", score=0.85)
                          for m in _windowed(text, SEX_RES) if m.group("val"))  # fmt: skip


# A relative of the patient named by a possessive ("su pareja", "sus padres"): MEDDOCAN annotates the kinship word
# as FAMILIARES_SUJETO_ASISTENCIA (train: 37 of 44 such mentions exactly, 6 more inside a longer span).
_KIN = (r"pareja|espos[oa]|marido|madre|padres?|herman[oa]s?|hij[oa]s?|abuel[oa]s?|t[ií][oa]s?|prim[oa]s?|"
        r"sobrin[oa]s?|niet[oa]s?|familiar(?:es)?|novi[oa]|suegr[oa]s?|cuñad[oa]s?")
RELATIVE_RE = _c(r"\bsus?[ \t]+(?P<val>" + _KIN + r")\b", I)
# After an article only the words train annotates that way nearly always ("la familia" 19 of 22 exactly, "los padres"
# 11 of 12, "el padre" 6 of 6, "la madre" 11 of 15, "los familiares" 3 of 4); "el hijo" (0 of 3), "la hermana" (0 of 1)
# and the like stay out. `rules-7`.
DET_RELATIVE_RE = _c(r"\b(?:la|el|los)[ \t]+(?P<val>familia|familiar(?:es)?|padres?|madre)\b", I)


def find_relatives(text: str) -> list[Span]:
    """Kinship words after 'su'/'sus', and a few after an article ('la familia', 'los padres'): the patient's
    relatives."""
    return [_span(m, "FAMILIARES_SUJETO_ASISTENCIA", "rule:relative", "val", score=0.7)
            for r in (RELATIVE_RE, DET_RELATIVE_RE) for m in r.finditer(text)]


# MEDDOCAN annotates "lactante" (an infant patient) as ID_SUJETO_ASISTENCIA wherever it occurs: train 8 of 8
# mentions, exactly that word. Other patient descriptors ("raza ...", "de origen ...") are annotated too seldom or
# under several labels to make a rule (docs/deid.md).
DESCRIPTOR_RE = _c(r"\b(?P<val>lactantes?)\b", I)


def find_descriptors(text: str) -> list[Span]:
    """Patient descriptors MEDDOCAN annotates as ID_SUJETO_ASISTENCIA ('lactante')."""
    return [_span(m, "ID_SUJETO_ASISTENCIA", "rule:descriptor", "val", score=0.7) for m in DESCRIPTOR_RE.finditer(text)]


def find_header_fields(text: str) -> list[Span]:
    """Values of report header fields (Nombre, Apellidos, Médico, Domicilio, Localidad, País)."""
    out = []
    for rx, label, det in HEADER_RES:
        for m in rx.finditer(text):
            s, e = m.span("val")
            val = _HEADER_STOP.sub("", text[s:e])
            if not val.strip():
                continue
            pieces = _place_pieces(s, val) if label in _SPLIT_LABELS else [(s, s + len(val))]
            out.extend(Span(a, b, label, det, 0.8) for a, b in pieces)
    return out


MATCHERS: dict[str, Callable[[str], list[Span]]] = {
    "dni": find_dni_nie,
    "nss": find_nss,
    "record": find_record_numbers,
    "phone": find_phones,
    "email": find_emails,
    "url": find_urls,
    "ip": find_ips,
    "iban": find_ibans,
    "postal": find_postal_codes,
    "date": find_dates,
    "age": find_ages,
    "sex": find_sex,
    "header": find_header_fields,
    "relative": find_relatives,
    "descriptor": find_descriptors,
}


def find_all(text: str, matchers: Iterable[str] | None = None) -> list[Span]:
    """Run the named matchers (all by default) and return their spans sorted; overlaps are left to merge."""
    if not text:
        return []
    names = list(MATCHERS) if matchers is None else list(matchers)
    out: list[Span] = []
    for name in names:
        out.extend(MATCHERS[name](text))
    return sorted(out)
