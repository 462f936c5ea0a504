"""Convert the temperature in a request between Celsius, Fahrenheit and Kelvin.

    python3 convert.py "Convert 100 degrees Celsius to Fahrenheit"   ->   100 °C = 212 °F
"""

import re
import sys

SCALES = {"c": "celsius", "celsius": "celsius", "f": "fahrenheit", "fahrenheit": "fahrenheit", "k": "kelvin",
          "kelvin": "kelvin"}
UNIT = {"celsius": "°C", "fahrenheit": "°F", "kelvin": "K"}
SCALE = r"(celsius|fahrenheit|kelvin|c|f|k)\b"
VALUE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:degrees?\s*|°\s*)?" + SCALE, re.I)
TARGET = re.compile(r"\b(?:to|in|into)\s+(?:degrees\s+)?" + SCALE, re.I)


def to_kelvin(value: float, scale: str) -> float:
    return {"celsius": value + 273.15, "fahrenheit": (value - 32) * 5 / 9 + 273.15, "kelvin": value}[scale]


def from_kelvin(value: float, scale: str) -> float:
    return {"celsius": value - 273.15, "fahrenheit": (value - 273.15) * 9 / 5 + 32, "kelvin": value}[scale]


def fmt(x: float) -> str:
    return f"{round(x, 2):g}"


def main(text: str) -> int:
    found, target = VALUE.search(text), None
    if found:
        rest = text[found.end():]
        target = TARGET.search(rest) or TARGET.search(text)
    if not found or not target:
        print("could not read a temperature and a target scale (e.g. 'convert 100 C to F')")
        return 2
    value, source, dest = float(found.group(1)), SCALES[found.group(2).lower()], SCALES[target.group(1).lower()]
    result = from_kelvin(to_kelvin(value, source), dest)
    print(f"{fmt(value)} {UNIT[source]} = {fmt(result)} {UNIT[dest]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(" ".join(sys.argv[1:])))
