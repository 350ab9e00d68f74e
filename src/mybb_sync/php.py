"""PHP's serialize/unserialize and rtrim, byte-exact, for the values MyBB stores.

MyBB keeps theme properties, stylesheet lists and datacache rows PHP-serialized;
the forum only picks up a change if the bytes are what PHP itself would write.
"""

import math
import re
from typing import TypeAlias

__all__ = ["PhpValue", "array_key", "dumps", "loads", "rtrim", "unserialized"]

PhpValue: TypeAlias = "bool | int | float | str | dict[int | str, PhpValue] | None"

# What PHP's unserialize accepts after "d:" (besides INF/-INF/NAN).
_FLOAT = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(rb"[+-]?[0-9]+")
_COUNT = re.compile(rb"[0-9]+")

# PHP's rtrim() default set; str.rstrip() would also eat NBSP, form feed, ...
_PHP_TRIM = " \t\n\r\0\x0b"


def rtrim(text: str) -> str:
    """Strip trailing whitespace exactly like PHP's rtrim (only " \\t\\n\\r\\0\\x0B")."""
    return text.rstrip(_PHP_TRIM)


_INT_KEY = re.compile(r"0|-?[1-9][0-9]*")


def array_key(key: int | str) -> int | str:
    """The key PHP stores: decimal-integer strings become int keys."""
    if isinstance(key, str) and _INT_KEY.fullmatch(key) and -(2**63) <= int(key) < 2**63:
        return int(key)
    return key


def unserialized(value: PhpValue) -> PhpValue:
    """A loaded value re-keyed at every level as PHP's arrays key it (`loads` keeps keys as written)."""
    if not isinstance(value, dict):
        return value
    return {array_key(key): unserialized(item) for key, item in value.items()}


def dumps(value: object) -> str:
    """Serialize like PHP: dicts keep key order, int and str keys stay distinct.

    Lists and tuples are written as arrays keyed 0..n-1 (what PHP's `[]` builds).
    """
    out: list[str] = []
    _dump(value, out)
    return "".join(out)


def _dump(value: object, out: list[str]) -> None:
    if value is None:
        out.append("N;")
    elif isinstance(value, bool):
        out.append(f"b:{int(value)};")
    elif isinstance(value, int):
        out.append(f"i:{value};")
    elif isinstance(value, float):
        out.append(f"d:{_format_float(value)};")
    elif isinstance(value, str):
        out.append(f's:{len(value.encode("utf-8"))}:"{value}";')
    elif isinstance(value, dict):
        out.append(f"a:{len(value)}:{{")
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise TypeError(f"PHP array keys must be int or str, not {type(key).__name__}")
            _dump(key, out)
            _dump(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        _dump(dict(enumerate(value)), out)
    else:
        raise TypeError(f"cannot PHP-serialize {type(value).__name__}")


def _format_float(value: float) -> str:
    """Shortest round-trip form in PHP's spelling (1.0 -> 1, 1e25 -> 1.0E+25)."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}E{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def loads(text: str) -> PhpValue:
    """Parse one PHP-serialized value; string lengths are UTF-8 byte counts.

    Raises ValueError (one line) on malformed input, objects or trailing data.
    """
    data = text.encode("utf-8")
    parser = _Parser(data)
    try:
        value = parser.value()
    except RecursionError:
        raise ValueError("PHP serialized data nested too deeply") from None
    if parser.pos != len(data):
        raise ValueError(f"bad PHP serialized data: trailing bytes at offset {parser.pos}")
    return value


class _Parser:
    """Recursive-descent reader over the UTF-8 bytes (lengths are byte counts)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"bad PHP serialized data at offset {self.pos}: {what}")

    def expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise self.fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        found = pattern.match(self.data, self.pos)
        if found is None:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def value(self) -> PhpValue:
        kind = self.data[self.pos : self.pos + 2]
        if self.data.startswith(b"N;", self.pos):
            self.pos += 2
            return None
        if kind == b"b:":
            self.pos += 2
            flag = self.data[self.pos : self.pos + 1]
            if flag not in (b"0", b"1"):
                raise self.fail("expected 0 or 1 after b:")
            self.pos += 1
            self.expect(b";")
            return flag == b"1"
        if kind == b"i:":
            self.pos += 2
            number = int(self.match(_INT, "an integer"))
            self.expect(b";")
            return number
        if kind == b"d:":
            self.pos += 2
            return self.float_value()
        if kind == b"s:":
            return self.string()
        if kind == b"a:":
            return self.array()
        raise self.fail("expected one of N; b: i: d: s: a: (objects are not supported)")

    def float_value(self) -> float:
        for special, number in ((b"NAN", math.nan), (b"-INF", -math.inf), (b"INF", math.inf)):
            if self.data.startswith(special, self.pos):
                self.pos += len(special)
                self.expect(b";")
                return number
        number = float(self.match(_FLOAT, "a float"))
        self.expect(b";")
        return number

    def string(self) -> str:
        self.expect(b"s:")
        length = int(self.match(_COUNT, "a string length"))
        self.expect(b':"')
        end = self.pos + length
        if end > len(self.data):
            raise self.fail(f"string of {length} bytes runs past the end")
        try:
            text = self.data[self.pos : end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"string of {length} bytes is not whole UTF-8") from None
        self.pos = end
        self.expect(b'";')
        return text

    def array(self) -> dict[int | str, PhpValue]:
        self.expect(b"a:")
        count = int(self.match(_COUNT, "an array length"))
        self.expect(b":{")
        result: dict[int | str, PhpValue] = {}
        for _ in range(count):
            key = self.value()
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise self.fail("array keys must be i: or s:")
            result[key] = self.value()
        if len(result) != count:
            raise self.fail("duplicate array key")
        self.expect(b"}")
        return result
