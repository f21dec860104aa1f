"""Decode PyPI's XML-RPC answers (``changelog_since_serial``, ``changelog_last_serial``) and their faults.

A fault is a well-formed answer, not a parse error: it comes back as an ``RpcFault`` value so the caller can
back off on -32500 ("Limit may reset in N seconds") and dead-letter anything else. Rows that do not have the
documented ``(name, version|None, unix_ts, action, serial)`` shape are returned as ``bad_rows`` so one odd row
is dead-lettered while the rest of the page still flows.
"""

from __future__ import annotations

import re
import xmlrpc.client
from xml.parsers.expat import ExpatError

from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import ChangelogPage, JournalRow, RpcFault

_RESET = re.compile(r"Limit may reset in (\d{1,9}(?:\.\d+)?) seconds", re.I)
_MAX_BAD_ROW = 300


def limit_reset_seconds(message: str) -> float | None:
    """The wait Warehouse's rate-limit fault announces, if it says one."""
    m = _RESET.search(message)
    return float(m.group(1)) if m else None


def _loads(body: bytes) -> tuple[object, ...] | RpcFault:
    try:
        params, _ = xmlrpc.client.loads(body, use_builtin_types=True)
    except xmlrpc.client.Fault as fault:
        code = fault.faultCode if isinstance(fault.faultCode, int) else 0
        return RpcFault(code, str(fault.faultString)[:1000])
    except (ExpatError, xmlrpc.client.Error) as exc:  # Error: e.g. ResponseError for an unclosed response
        raise PyPIParseError("malformed-xml", f"invalid XML-RPC response: {exc!r}") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        # xmlrpc.client's unmarshaller fails this way on ill-typed values (<int>x</int>, a bad dateTime, ...).
        raise PyPIParseError("malformed-xml", f"invalid XML-RPC value: {type(exc).__name__}") from None
    return tuple(params)


def parse_changelog(body: bytes) -> ChangelogPage | RpcFault:
    """``changelog_since_serial`` → rows (timestamps in ms) in serial order, or the fault."""
    result = _loads(body)
    if isinstance(result, RpcFault):
        return result
    if len(result) != 1 or not isinstance(result[0], list):
        raise PyPIParseError("schema", "changelog response is not one array")
    rows: list[JournalRow] = []
    bad: list[str] = []
    serials: list[int] = []
    for item in result[0]:
        row = _row(item)
        if row is None:
            bad.append(repr(item)[:_MAX_BAD_ROW])
            serial = item[4] if isinstance(item, list | tuple) and len(item) == 5 else None
            if isinstance(serial, int) and not isinstance(serial, bool) and serial >= 0:
                serials.append(serial)
        else:
            rows.append(row)
            serials.append(row.serial)
    rows.sort(key=lambda r: r.serial)
    return ChangelogPage(tuple(rows), tuple(bad), max(serials) if serials else None)


def _row(item: object) -> JournalRow | None:
    if not isinstance(item, list | tuple) or len(item) != 5:
        return None
    name, version, ts, action, serial = item
    if not isinstance(name, str) or not name or not isinstance(action, str):
        return None
    if version is not None and not isinstance(version, str):
        return None
    if isinstance(ts, bool) or isinstance(serial, bool) or not isinstance(ts, int) or not isinstance(serial, int):
        return None
    if serial < 0 or not 0 <= ts < 2**40:
        return None
    return JournalRow(name=name, version=version, timestamp=ts * 1000, action=action, serial=serial)


def parse_last_serial(body: bytes) -> int | RpcFault:
    """``changelog_last_serial`` → the newest journal serial, or the fault."""
    result = _loads(body)
    if isinstance(result, RpcFault):
        return result
    if len(result) != 1 or isinstance(result[0], bool) or not isinstance(result[0], int) or result[0] < 0:
        raise PyPIParseError("schema", "changelog_last_serial did not return one non-negative integer")
    return result[0]
