"""JSON from outside (application files, batch defaults, request bodies), read with limits.

Python's json module recurses once per nesting level: a document nested 100,000 deep ends in RecursionError,
and a large one is read whole into memory. Nothing we accept is deeper than a few levels or larger than a
few kilobytes, so the limits are checked before decoding, and every failure is a ValidationError naming the
source (a file name or a field), never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pki.errors import FieldError, ValidationError

MAX_BYTES = 1_048_576  # an application is about 2 KB; a batch's defaults less
MAX_DEPTH = 20  # an application object is 1 deep; lists of objects 3

# Strings (with their escapes) as whole tokens, so that brackets inside them are not counted; or a bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _refused(source: str, field: str, message: str, message_zh: str) -> ValidationError:
    return ValidationError([FieldError(field, f"{source}: {message}", message_zh)])


def depth_of(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data``, counted without recursion."""
    depth = deepest = 0
    for token in _TOKENS.finditer(data):
        c = token.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_object(
    data: bytes, *, source: str, field: str = "file", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """Decode a JSON object (UTF-8, an optional BOM) within the limits. Raises ValidationError naming
    ``source`` (for the message) and ``field`` (for the form) when it is too large, too deep, not JSON
    or not an object."""
    if len(data) > max_bytes:
        raise _refused(source, field, f"larger than {max_bytes} bytes", f"JSON内容不能超过 {max_bytes} 字节")
    if depth_of(data) > max_depth:
        raise _refused(
            source, field, f"nested deeper than {max_depth} levels", f"JSON嵌套不能超过 {max_depth} 层"
        )
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _refused(source, field, f"not readable JSON ({str(e)[:200]})", "不是有效的JSON") from e
    if not isinstance(value, dict):
        raise _refused(source, field, "expected a JSON object", "应为JSON对象")
    return value


def read_object_file(path: Path, *, field: str = "file", max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """:func:`parse_object` on a file, reading no more than the limit allows. OSError propagates (the CLI
    reports it with the file name)."""
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    return parse_object(data, source=str(path), field=field, max_bytes=max_bytes)
