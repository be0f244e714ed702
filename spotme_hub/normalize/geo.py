"""Geolocation: great-circle distance and the geofence verdict."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres between two WGS84 points on a sphere of the mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def offset_point(
    lat: float, lon: float, distance_m: float, bearing_rad: float
) -> tuple[float, float]:
    """The point `distance_m` from (lat, lon) towards `bearing_rad` (0 = north), for the short
    distances of a geofence (a local flat approximation; simulators place punches with it)."""
    dlat = distance_m * math.cos(bearing_rad) / EARTH_RADIUS_M
    dlon = distance_m * math.sin(bearing_rad) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


def valid_coordinates(lat: float | None, lon: float | None) -> bool:
    if lat is None or lon is None:
        return False
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return False
    return -90 <= lat <= 90 and -180 <= lon <= 180
