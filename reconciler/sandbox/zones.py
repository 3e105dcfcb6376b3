"""Eucalyptus zone names on top of moto's region zones.

Eucalyptus clusters have free-form names (``ViciousLiesAndDangerousRumors``); moto (classic ELB in
particular) only knows a region's real zones. The sandbox maps the configured Eucalyptus zones, in
order, onto ``us-east-1a``, ``us-east-1b``, ... : request parameters that name a zone are
translated on the way in, and element text equal to a mapped moto zone on the way out.
"""

from __future__ import annotations

import re
from typing import Sequence

MOTO_REGION = "us-east-1"
MOTO_ZONES = tuple(f"{MOTO_REGION}{letter}" for letter in "abcdef")
DEFAULT_ZONES = ("ViciousLiesAndDangerousRumors",)

# Parameter names that carry one zone name (EC2 and ELB query APIs).
_ZONE_KEY = re.compile(
    r"^(?:.*\.)?(?:AvailabilityZone|ZoneName)(?:\.\d+)?$"
    r"|^(?:.*\.)?AvailabilityZones\.(?:member\.)?\d+$"
)
_FILTER_NAME = re.compile(r"^Filter\.(\d+)\.Name$")
_FILTER_VALUE = re.compile(r"^Filter\.(\d+)\.Value\.\d+$")
_ZONE_FILTERS = {"availability-zone", "availabilityZone", "zone-name", "availability-zone-name"}
_ELEMENT_TEXT = re.compile(r">(" + "|".join(re.escape(z) for z in MOTO_ZONES) + r")<")

_ZONE_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class ZoneMap:
    def __init__(self, zones: Sequence[str] = DEFAULT_ZONES):
        zones = [z.strip() for z in zones if z and z.strip()]
        if not zones:
            raise ValueError("the sandbox needs at least one availability zone")
        if len(zones) > len(MOTO_ZONES):
            raise ValueError(f"the sandbox supports at most {len(MOTO_ZONES)} zones, got {len(zones)}")
        if len(set(zones)) != len(zones):
            raise ValueError(f"zone names must be unique: {zones}")
        for zone in zones:
            if not _ZONE_NAME_OK.match(zone) or zone in MOTO_ZONES:
                raise ValueError(f"not a usable zone name: {zone!r}")
        self.zones: tuple[str, ...] = tuple(zones)
        self.to_moto: dict[str, str] = dict(zip(self.zones, MOTO_ZONES))
        self.to_euca: dict[str, str] = {m: e for e, m in self.to_moto.items()}

    # -- requests ------------------------------------------------------------------------
    @staticmethod
    def is_zone_key(key: str) -> bool:
        return bool(_ZONE_KEY.match(key))

    def zone_filter_indexes(self, items: Sequence[tuple[str, str]]) -> set[str]:
        """The N of every ``Filter.N.Name`` that filters on a zone."""
        found = set()
        for key, value in items:
            match = _FILTER_NAME.match(key)
            if match and value in _ZONE_FILTERS:
                found.add(match.group(1))
        return found

    def unknown_zones(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """Zone parameter values that are not configured Eucalyptus zones."""
        return [v for k, v in items if self.is_zone_key(k) and v and v not in self.to_moto]

    def request_translator(self, items: Sequence[tuple[str, str]]):
        """A ``(key, value) -> value`` function turning Eucalyptus zone names into moto ones."""
        filters = self.zone_filter_indexes(items)

        def translate(key: str, value: str) -> str:
            if value in self.to_moto:
                if self.is_zone_key(key):
                    return self.to_moto[value]
                match = _FILTER_VALUE.match(key)
                if match and match.group(1) in filters:
                    return self.to_moto[value]
            return value

        return translate

    # -- responses -----------------------------------------------------------------------
    def response_text(self, text: str) -> str:
        """Element text that is exactly a mapped moto zone becomes its Eucalyptus name."""
        return _ELEMENT_TEXT.sub(lambda m: f">{self.to_euca.get(m.group(1), m.group(1))}<", text)
