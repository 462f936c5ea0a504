"""Convert between numbers and Roman numerals (1-3999), reading the request's first number or numeral.

    python3 roman.py "What is 1994 in Roman numerals?"   ->   1994 = MCMXCIV
    python3 roman.py "What number is MMXXIV?"            ->   MMXXIV = 2024
"""

import re
import sys

VALUES = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
          (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
NUMERAL = re.compile(r"\b(?=[MDCLXVI]{2,}\b|[MDCLXV]\b)M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})\b")


def to_roman(n: int) -> str:
    out = []
    for value, letters in VALUES:
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)


def from_roman(s: str) -> int:
    total, i = 0, 0
    for value, letters in VALUES:
        while s.startswith(letters, i):
            total += value
            i += len(letters)
    return total


def main(text: str) -> int:
    number = re.search(r"\b\d+\b", text)
    if number and 1 <= int(number.group()) <= 3999:
        print(f"{number.group()} = {to_roman(int(number.group()))}")
        return 0
    numeral = NUMERAL.search(text)
    if numeral:
        print(f"{numeral.group()} = {from_roman(numeral.group())}")
        return 0
    print("found no number from 1 to 3999 and no Roman numeral")
    return 2


if __name__ == "__main__":
    sys.exit(main(" ".join(sys.argv[1:])))
