"""One place that decides whether an argument is valid, so the same value gets the same answer everywhere.

Every public function checks its scalar arguments through these helpers. Each error names the
argument, the value it got and what would be valid, e.g.
``ValueError: max_new_tokens must be an integer >= 1, got 2.5``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

__all__ = ["check_int", "check_number", "check_bool", "check_choice", "check_finite"]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if isinstance(value, str) else repr(value)


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int: an int or an integer-valued numpy/torch scalar, never a bool, float or string."""
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer{_range(minimum, maximum)}, got {_describe(value)}")
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got {out}")
    return out


def _is_integer(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):  # int and numpy integer scalars
        return True
    if isinstance(value, torch.Tensor) and value.ndim == 0:  # a 0-d integer tensor, e.g. from argmax
        return not (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool)
    return False


def check_number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                 finite: bool = True) -> float:
    """``value`` as a Python float: an int or float (numpy scalars too), never a bool or a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{_range(minimum, maximum)}, got {_describe(value)}")
    out = float(value)
    if finite and not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number{_range(minimum, maximum)}, got {out}")
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise ValueError(f"{name} must be a number{_range(minimum, maximum)}, got {out}")
    return out


def check_bool(name: str, value: Any) -> bool:
    """A real boolean; strings such as ``"no"`` are refused rather than read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...] | list[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; use one of {tuple(choices)}")
    return value


def check_finite(name: str, values: torch.Tensor | np.ndarray, *, where: str = "") -> None:
    """Raise naming ``name`` (and ``where``) if ``values`` holds NaN or inf, with the count and first position."""
    t = torch.as_tensor(values)
    if not (t.is_floating_point() or t.is_complex()):
        return
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        first = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
        kinds = sorted({"NaN" if math.isnan(float(v)) else "inf" for v in t[bad][:1000].flatten().tolist()})
        raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s) ({'/'.join(kinds)}) of {t.numel()}, "
                         f"first at index {first}{' ' + where if where else ''}")


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
