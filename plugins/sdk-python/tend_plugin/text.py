"""Numbers for people, the way tend's Rust plugins print them.

`num(11.5)` is `"11.5"`, `num(12.0)` is `"12"`, `num(1e20)` is
`"100000000000000000000"`: the shortest digits that read back as the same float,
no exponent, no trailing `.0` (Rust's `Display` for `f64`). For a fixed number of
decimals use Python's own `f"{x:.2f}"`, which rounds exactly as Rust's `{x:.2}`.
"""

import math

__all__ = ["num"]


def num(x: float) -> str:
    """`x` in its shortest exact form, without exponent or trailing `.0`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    r = repr(float(x))
    sign = ""
    if r.startswith("-"):
        sign, r = "-", r[1:]
    if "e" in r:
        mantissa, exp_text = r.split("e")
        exp = int(exp_text)
        whole, _, frac = mantissa.partition(".")
        digits = whole + frac
        point = len(whole) + exp
        if point <= 0:
            r = "0." + "0" * (-point) + digits
        elif point >= len(digits):
            r = digits + "0" * (point - len(digits))
        else:
            r = digits[:point] + "." + digits[point:]
    if r.endswith(".0"):
        r = r[:-2]
    return sign + r
