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

__all__ = ["check_int", "check_number", "check_bool", "check_choice", "check_finite", "check_texts",
           "as_numpy", "as_tensor"]


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


def check_texts(texts: Any, name: str = "texts", *, allow_single: bool = True, allow_empty: bool = False,
                allow_blank: bool = False) -> list[str]:
    """``texts`` as a list of strings: by default non-empty, each with at least one non-space character.

    One contract for every function that takes text, with the exceptions named where they are called:
    a single string is one text (``allow_single=True``, the default) or refused with a message saying
    to wrap it in a list (``allow_single=False``, where one string is more likely a mistake, such as a
    judge's batch). Scoring generated text passes ``allow_empty`` / ``allow_blank``: a model may
    generate nothing, and that is a result to score, not an input error."""
    if isinstance(texts, str):
        if not allow_single:
            raise TypeError(f"{name} must be a list of strings, got a single string; wrap it in a list: [{name}]")
        texts = [texts]
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a list of strings, got {_describe(texts)}") from None
    if not texts and not allow_empty:
        raise ValueError(f"{name} is empty: pass at least one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    empty = [] if allow_blank else [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(f"{name}[{empty[0]}] is an empty string; every text needs at least one token")
    return texts


def as_numpy(x: Any, name: str = "x", *, dtype: Any = None, ndim: int | None = None) -> np.ndarray:
    """``x`` (a numpy array, torch tensor of any dtype or device, or nested list) as a numpy array.

    bfloat16 tensors are widened to float32 first (numpy has no bfloat16). With ``ndim`` the result
    must have that many dimensions (a 1-D input to ``ndim=2`` becomes one row)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    try:
        out = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__} ({err})") from None
    if ndim is not None:
        if ndim == 2 and out.ndim == 1:
            out = out[None, :]
        if out.ndim != ndim:
            shape = "[n_samples, n_features]" if ndim == 2 else f"{ndim}-D"
            raise ValueError(f"{name} must be a {ndim}-D array {shape}; got shape {out.shape}")
    return out


def as_tensor(x: Any, name: str = "x", *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``x`` (a tensor, numpy array or nested list) as a CPU-or-same-device torch tensor of ``dtype``."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    try:
        return torch.as_tensor(np.asarray(x), dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__} ({err})") from None
