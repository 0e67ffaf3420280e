"""Secret handling and per-patient consistent surrogates (Faker ``es_ES``), seeded by HMAC-SHA256.

The same (person_id, PHI type, normalised real value) always yields the same surrogate, across notes, runs and
machines, for one secret; another patient or another secret gives an unrelated value. The real value never
leaves this module except as an HMAC input, and the secret never appears in a repr, str, log or error message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

from faker import Faker

from clinlake.errors import UserError

MIN_SECRET_BYTES = 16


class DeidSecretError(UserError):
    """The de-identification secret is missing, unreadable or too short (the message never holds the secret)."""


class DeidSecret:
    """The HMAC key, wrapped so that printing, logging or pickling error traces cannot reveal it."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(raw) < MIN_SECRET_BYTES:
            raise DeidSecretError(f"de-identification secret too short: need at least {MIN_SECRET_BYTES} bytes")
        self._key = raw

    def digest(self, *parts: str) -> bytes:
        """HMAC-SHA256 over the parts joined by a unit separator (so ('a','bc') != ('ab','c'))."""
        msg = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """A short non-reversible id of the key (HMAC of a constant), to tell secrets apart in run metadata."""
        return self.digest("clinlake-deid-fingerprint").hex()[:12]

    def __repr__(self) -> str:
        return "DeidSecret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeidSecret) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __reduce__(self):  # noqa: ANN204 - pickling is needed to ship the key to Spark executors
        return (DeidSecret, (self._key,))


def as_secret(secret: DeidSecret | bytes | str) -> DeidSecret:
    """Accept a DeidSecret or raw bytes/str."""
    return secret if isinstance(secret, DeidSecret) else DeidSecret(secret)


def load_secret(env_var: str = "CLINLAKE_DEID_SECRET", secret_file: str | os.PathLike | None = None) -> DeidSecret:
    """Read the secret from secret_file when given, else from env_var; raise DeidSecretError naming the source."""
    if secret_file is not None:
        path = Path(secret_file)
        try:
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise DeidSecretError(f"cannot read de-identification secret file {path}: {exc.strerror}") from None
        if not raw:
            raise DeidSecretError(f"de-identification secret file {path} is empty")
        return DeidSecret(raw)
    value = os.environ.get(env_var)
    if value is None or not value.strip():
        raise DeidSecretError(
            f"de-identification secret not set: export {env_var} or pass a secret file (the value is never logged)"
        )
    return DeidSecret(value.strip())


def normalise(value: str, label: str) -> str:
    """Case-, accent- and spacing-insensitive form of a PHI value, so 'García  López' == 'garcia lopez'."""
    v = unicodedata.normalize("NFKD", value)
    v = "".join(ch for ch in v if not unicodedata.combining(ch)).casefold()
    if label.startswith(("ID_", "NUMERO_")) or label in ("OTRO_NUMERO_IDENTIF", "DIRECCION_IP"):
        return re.sub(r"[^0-9a-z]", "", v)  # "26 63514095" == "26-63514095"
    v = re.sub(r"^(?:dra?|dona|don|sra?)\.?\s+", "", v)  # "Dr. Pérez" == "Pérez"
    return re.sub(r"[\s.,;:]+", " ", v).strip()


def seed_for(secret: DeidSecret, person_id: str, label: str, value: str) -> int:
    """64-bit seed from HMAC(secret, person_id, label, normalised value)."""
    return int.from_bytes(secret.digest("surrogate", str(person_id), label, normalise(value, label))[:8], "big")


def offset_days(secret: DeidSecret, person_id: str, low: int = -365, high: int = -30) -> int:
    """The patient's date shift in days, uniform in [low, high] from HMAC(secret, person_id)."""
    if low > high:
        raise ValueError("date shift range is empty")
    n = int.from_bytes(secret.digest("date-shift", str(person_id))[:8], "big")
    return low + n % (high - low + 1)


_local = threading.local()


def _faker() -> Faker:
    """One es_ES Faker per thread (creating one costs milliseconds; seeding it costs microseconds)."""
    fake = getattr(_local, "faker", None)
    if fake is None:
        fake = _local.faker = Faker("es_ES")
    return fake


def _shape_digits(value: str, fake: Faker) -> str:
    """Same shape as value: each digit -> random digit, each letter -> random letter, separators kept."""
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(str(fake.random_int(0, 9)))
        elif ch.isalpha():
            out.append(fake.random_uppercase_letter() if ch.isupper() else fake.random_lowercase_letter())
        else:
            out.append(ch)
    return "".join(out)


def _phone(value: str, fake: Faker) -> str:
    """A phone number of the same shape in the unassigned 5xx range, so it can be no real subscriber."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    shaped = list(_shape_digits(value, fake))
    # national number = the last 9 digits; its first digit 5 is not allocated to subscribers in Spain
    if len(digits) >= 9:
        shaped[digits[-9]] = "5"
    return "".join(shaped)


def _name(value: str, fake: Faker) -> str:
    """A Spanish name with as many words as the original (1 -> first name, 2+ -> first name + surnames)."""
    words = len(value.split())
    if words <= 1:
        return fake.first_name()
    return " ".join([fake.first_name()] + [fake.last_name() for _ in range(words - 1)])


def _generate(label: str, value: str, fake: Faker) -> str:
    """A surrogate of the right kind for label."""
    if label in ("NOMBRE_SUJETO_ASISTENCIA", "NOMBRE_PERSONAL_SANITARIO"):
        return _name(value, fake)
    if label == "CALLE":
        return fake.street_address()
    if label == "TERRITORIO":
        return fake.postcode() if value.strip().replace("E-", "").isdigit() else fake.city()
    if label == "PAIS":
        return fake.country()
    if label == "HOSPITAL":
        return fake.random_element(("Hospital Universitario ", "Hospital General de ", "Hospital ")) + fake.city()
    if label == "CENTRO_SALUD":
        return "Centro de Salud " + fake.city()
    if label == "INSTITUCION":
        return fake.company()
    if label == "PROFESION":
        return fake.job().lower()
    if label == "CORREO_ELECTRONICO":
        return fake.safe_email()  # example.com/.org/.net: reserved, never a real mailbox
    if label == "URL_WEB":
        return "https://www.example.com/" + fake.slug()
    if label in ("NUMERO_TELEFONO", "NUMERO_FAX"):
        return _phone(value, fake)
    if label == "DIRECCION_IP":
        return fake.ipv4_private()
    return _shape_digits(value, fake)  # identifiers and anything else: same shape, random characters


@lru_cache(maxsize=65536)
def _cached(seed: int, label: str, value: str) -> str:
    """Generation is deterministic given the seed, so results can be cached per (seed, label, value)."""
    fake = _faker()
    fake.seed_instance(seed)
    return _generate(label, value, fake)


def surrogate(secret: DeidSecret, person_id: str, label: str, value: str) -> str:
    """The consistent surrogate for this patient's value of this PHI type."""
    return _cached(seed_for(secret, person_id, label, value), label, value)
