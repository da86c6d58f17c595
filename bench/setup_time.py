"""Set-up time on a fresh clone: the uv path (`make install`) against the pip path it replaced.

    python bench/setup_time.py                # both paths, cold and warm package cache, median of 3
    python bench/setup_time.py --repeats 1    # a quicker look

Each measurement starts from a fresh copy of the repo's files (what `git clone` gives: tracked and not ignored),
with no .venv and no .tools:

- uv: `make install UV=.tools/bin/uv`, as on a machine without uv: pip installs uv into .tools/ (timed apart),
  then `uv sync --locked` builds .venv from uv.lock and `uv pip check` checks it.
- pip: what `make install` did before uv: `python -m venv .venv`, `pip install pip==25.3`,
  `pip install -r requirements.lock`, `pip check`.

"Cold" starts with empty package caches (a new machine: every wheel is downloaded); "warm" reuses the caches the
cold runs filled (a second clone on the same machine). Both tools see only their default package index (or
PIP_INDEX_URL / UV_DEFAULT_INDEX when set): pip's own configuration files are ignored unless --pip-config
inherit. Only the standard library is used, so any Python 3.11+ runs it. The table is printed as Markdown and
written to bench/setup_results.md. Nothing here asserts a target: the figures are the result.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP_VERSION = "25.3"  # the pip the old `make install` upgraded to first
# Settings that would send a measurement elsewhere than the package index, or into a shared cache.
_DROPPED_ENV = ("PIP_", "UV_", "VIRTUAL_ENV", "CONDA_PREFIX")
_KEPT_ENV = ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL")


def fresh_copy(dest: Path, source: Path = ROOT) -> Path:
    """The files a clone of ``source`` would have (tracked or new, never ignored), copied into ``dest``."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        path = source / name
        if path.is_file():  # a tracked file deleted in the work tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / name)
    return dest


def base_env(pip_config: str) -> dict[str, str]:
    """This environment without pip, uv and virtualenv settings (index URLs kept), the repo's .venv off PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV) or k in _KEPT_ENV}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(ROOT)
    )
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if pip_config == "isolated":
        env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def python_for_venvs(env: dict[str, str]) -> str:
    """The interpreter `make` picks (python3.11, else python3), found on the cleaned PATH."""
    found = shutil.which("python3.11", path=env["PATH"]) or shutil.which("python3", path=env["PATH"])
    if not found:
        raise SystemExit("no python3.11 or python3 on PATH")
    return found


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run a command to completion; its wall time in seconds."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr.decode(errors='replace')[-3000:]}")
    return seconds


def set_up_with_uv(clone: Path, env: dict[str, str]) -> dict[str, float]:
    """`make install` on a machine without uv: the bootstrap of uv, then uv sync."""
    bootstrap = timed(["make", ".tools/bin/uv", "UV=.tools/bin/uv"], clone, env)
    sync = timed(["make", "install", "UV=.tools/bin/uv"], clone, env)
    return {"bootstrap": bootstrap, "sync": sync, "total": bootstrap + sync}


def set_up_with_pip(clone: Path, env: dict[str, str]) -> dict[str, float]:
    """The old `make install`: a venv, a pinned pip, the lock installed with pip."""
    python = python_for_venvs(env)
    pip = [str(clone / ".venv" / "bin" / "python"), "-m", "pip"]
    total = timed([python, "-m", "venv", ".venv"], clone, env)
    total += timed([*pip, "install", f"pip=={PIP_VERSION}"], clone, env)
    total += timed([*pip, "install", "-r", "requirements.lock"], clone, env)
    total += timed([*pip, "check"], clone, env)
    return {"total": total}


SET_UPS = {"uv": set_up_with_uv, "pip": set_up_with_pip}


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def measure(path: str, repeats: int, work: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Median timings of one path, cold then warm; the cache size the cold runs left."""
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    cache = work / f"{path}-cache"
    for temperature in ("cold", "warm"):
        for i in range(repeats):
            if temperature == "cold" and cache.exists():
                shutil.rmtree(cache)
            case_env = env | {"PIP_CACHE_DIR": str(cache / "pip"), "UV_CACHE_DIR": str(cache / "uv")}
            clone = fresh_copy(work / f"{path}-{temperature}-{i}")
            runs[temperature].append(SET_UPS[path](clone, case_env))
            print(
                f"  {path} {temperature} #{i + 1}: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in runs[temperature][-1].items()),
                flush=True,
            )
            shutil.rmtree(clone)
    result = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()}
    result["cache"] = {"mib": folder_mib(cache)}
    return result


def tool_versions(env: dict[str, str]) -> str:
    python = python_for_venvs(env)
    found = subprocess.run([python, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    uv_version = next(
        line.split("=")[1].strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith("UV_VERSION")
    )
    packages = sum(
        1 for line in (ROOT / "requirements.lock").read_text().splitlines() if line and not line.startswith((" ", "#"))
    )
    return f"{found}; uv {uv_version} (installed by the Makefile); pip {PIP_VERSION}; {packages} packages in the lock"


def render(results: dict[str, dict[str, dict[str, float]]], header: list[str]) -> str:
    """The Markdown table of the medians (pure: tested on made-up figures)."""
    lines = [*header, "", "| path | cold cache (s) | warm cache (s) |", "|---|---|---|"]
    if "uv" in results:
        uv = results["uv"]
        lines += [
            f"| uv: `make install` (no uv on PATH) | {uv['cold']['total']:.1f} | {uv['warm']['total']:.1f} |",
            (
                f"| - of which installing uv into .tools | {uv['cold']['bootstrap']:.1f} | "
                f"{uv['warm']['bootstrap']:.1f} |"
            ),
            f"| - of which `uv sync` + `uv pip check` | {uv['cold']['sync']:.1f} | {uv['warm']['sync']:.1f} |",
        ]
    if "pip" in results:
        pip = results["pip"]
        lines.append(
            f"| pip: `python -m venv` + `pip install -r requirements.lock` | {pip['cold']['total']:.1f} | "
            f"{pip['warm']['total']:.1f} |"
        )
    if {"uv", "pip"} <= set(results):
        lines.append(
            "| pip / uv | "
            + " | ".join(f"{results['pip'][t]['total'] / results['uv'][t]['total']:.1f}x" for t in ("cold", "warm"))
            + " |"
        )
    lines += [
        "",
        "Package cache filled by a cold run: "
        + ", ".join(f"{path} {r['cache']['mib']:.0f} MiB" for path, r in results.items()),
    ]
    if "pip" in results and results["pip"]["cache"]["mib"] < 1:
        lines += [
            "",
            (
                "pip cached nothing: its HTTP cache keeps only responses that allow caching, and the index answered "
                "without caching headers, so pip's warm runs downloaded every package again."
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--paths", default="uv,pip", help="which set-ups to measure (uv, pip)")
    parser.add_argument(
        "--pip-config",
        choices=("isolated", "inherit"),
        default="isolated",
        help="isolated: pip reads no configuration file; inherit: pip's configuration as set here",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "setup_results.md"), help="Markdown file for the table")
    args = parser.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    if unknown := set(paths) - set(SET_UPS):
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")

    env = base_env(args.pip_config)
    memory = "unknown"
    if Path("/proc/meminfo").exists():
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB"
    header = [
        "## Set-up time on a fresh clone",
        "",
        (
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {memory} RAM, {platform.system()} "
            f"{platform.release()}"
        ),
        f"- {tool_versions(env)}",
        (f"- medians of {args.repeats} run(s), each on a fresh copy of the repo; pip configuration: {args.pip_config}"),
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        for path in paths:
            print(f"measuring {path} ...", flush=True)
            results[path] = measure(path, args.repeats, Path(tmp), env)
    text = render(results, header)
    Path(args.out).write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
