"""When an input was acquired: from its tags (a product's metadata, a STAC Item), else from its file name.

Every answer says where it came from, so an output's STAC ``datetime`` can be traced: a Sentinel-2
product's ``PRODUCT_START_TIME``, a STAC Item's ``datetime``, an ``ACQUISITION_DATE`` tag, or a date
in a name such as ``S2A_MSIL1C_20170527T102031_N0205_R065_T33UUB_...``. TIFF's own ``DateTime`` tag is
not used: it is when the file was made, which for a processed raster is the processing time.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Raster tags that may carry the acquisition time, most specific first.
DATE_TAGS = ("ACQUISITION_DATE", "DATATAKE_SENSING_START", "PRODUCT_START_TIME")
#: The tag beside ``ACQUISITION_DATE`` that says where satsr's readers took it from.
DATE_SOURCE_TAG = "ACQUISITION_DATE_SOURCE"
#: Years a date in a file name may have (outside them, digits are taken for something else).
PLAUSIBLE_YEARS = (1972, 2100)
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:T(\d{2})(\d{2})(\d{2}))?(?!\d)")


@dataclass(frozen=True)
class Acquired:
    """An acquisition time (UTC) and where it was read."""

    when: datetime.datetime
    source: str  # e.g. "file name", "ACQUISITION_DATE tag (SAFE metadata PRODUCT_START_TIME)"
    date_only: bool = False  # only the day is known (``when`` is its start)

    def rfc3339(self) -> str:
        return rfc3339(self.when)

    def tags(self) -> dict[str, str]:
        """As raster tags (an output's, so that what reads it next finds the date and its source)."""
        value = self.when.date().isoformat() if self.date_only else self.rfc3339()
        return {"ACQUISITION_DATE": value, DATE_SOURCE_TAG: self.source}


def rfc3339(moment: datetime.datetime) -> str:
    """``moment`` as an RFC 3339 UTC string, e.g. ``2017-05-27T10:20:31Z``."""
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _is_date_only(text: str) -> bool:
    return len(text.strip()) in (len("YYYYMMDD"), len("YYYY-MM-DD"))


def parse_time(text: str) -> datetime.datetime | None:
    """An ISO 8601 date or time (UTC when it gives no zone), or None if it is not one."""
    text = text.strip().replace("Z", "+00:00")
    for parse in (
        datetime.datetime.fromisoformat,
        lambda t: datetime.datetime.strptime(t, "%Y%m%d"),
        lambda t: datetime.datetime.strptime(t, "%Y%m%dT%H%M%S"),
    ):
        try:
            moment = parse(text)
        except ValueError:
            continue
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)
    return None


def date_in_name(name: str) -> Acquired | None:
    """The first plausible ``YYYYMMDD`` or ``YYYY-MM-DD`` (with the ``THHMMSS`` that may follow) in a name."""
    for match in _DATE_IN_NAME.finditer(name):
        year, month, day, *clock = match.groups()
        has_time = clock[0] is not None
        hour, minute, second = (int(c) for c in clock) if has_time else (0, 0, 0)
        try:
            moment = datetime.datetime(
                int(year), int(month), int(day), hour, minute, second, tzinfo=datetime.UTC
            )
        except ValueError:
            continue
        if PLAUSIBLE_YEARS[0] <= moment.year <= PLAUSIBLE_YEARS[1]:
            return Acquired(moment, f"file name {name}", date_only=not has_time)
    return None


def acquisition_time(tags: Mapping[str, str], name: str | None = None) -> Acquired | None:
    """The acquisition time from ``tags`` (``DATE_TAGS``), else from a date in the file ``name``."""
    for key in DATE_TAGS:
        value = tags.get(key)
        moment = parse_time(value) if value else None
        if value and moment is not None:
            origin = tags.get(DATE_SOURCE_TAG) if key == "ACQUISITION_DATE" else None
            return Acquired(moment, f"{key} tag" + (f" ({origin})" if origin else ""), _is_date_only(value))
    return date_in_name(name) if name else None


def acquisition_datetime(tags: Mapping[str, str]) -> str | None:
    """The acquisition time from the tags alone as an RFC 3339 string (UTC), or None if absent."""
    acquired = acquisition_time(tags)
    return acquired.rfc3339() if acquired is not None else None
