"""Countries as OpenCTI holds them, from the reference dataset shipped in ``countries.json``.

OpenCTI derives a Country's standard id from its name, so a Location named
after ISO or pycountry ("United Kingdom") would be a second country beside
the platform's own ("United Kingdom of Great Britain and Northern Ireland").
The dataset's provenance is in the file itself.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Country:
    alpha2: str
    name: str
    #: ``x_opencti_aliases`` exactly as the dataset gives them (alpha-3 then alpha-2).
    aliases: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _by_code() -> dict[str, Country]:
    data = json.loads(resources.files("vtframework.stix").joinpath("countries.json").read_text(encoding="utf-8"))
    found: dict[str, Country] = {}
    for row in data["countries"]:
        country = Country(row["alpha2"], row["name"], tuple(row["aliases"]))
        for code in (country.alpha2, *country.aliases):
            found.setdefault(code.upper(), country)
    return found


def country_by_code(code: object) -> Country | None:
    """The country of an ISO 3166-1 alpha-2 (or alpha-3) code, ``None`` for anything else."""
    if not isinstance(code, str) or not 2 <= len(code.strip()) <= 3:
        return None
    return _by_code().get(code.strip().upper())
