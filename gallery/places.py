"""Offline reverse geocoding: GPS position → city, region, country.

Uses ``reverse_geocoder`` (GeoNames places of 1,000+ people, shipped inside
the package). Building its k-d tree costs a few seconds once per process, so
the geocoder is loaded lazily and every lookup is a batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    city: str
    region: str
    country: str
    country_code: str


@functools.cache
def _geocoder():
    import reverse_geocoder

    return reverse_geocoder.RGeocoder(mode=1, verbose=False)


@functools.cache
def country_name(code: str) -> str:
    import pycountry

    country = pycountry.countries.get(alpha_2=code.upper()) if code else None
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


def lookup(coords: list[tuple[float, float]]) -> list[Place]:
    """Nearest named place for each (latitude, longitude), in order."""
    if not coords:
        return []
    rows = _geocoder().query(coords)
    return [
        Place(
            city=row.get("name", ""),
            region=row.get("admin1", ""),
            country=country_name(row.get("cc", "")),
            country_code=row.get("cc", ""),
        )
        for row in rows
    ]
