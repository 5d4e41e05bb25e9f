#!/usr/bin/env python3
"""Developer tasks, with nothing but Python installed.

    python3 tasks.py example   # run the example app on http://127.0.0.1:8000 (PORT=... to change)
    python3 tasks.py test      # run the test suite with coverage

Each task creates ./.venv on first use and installs the project with its dev extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    """Create .venv and install the project (editable, with dev tools) when pyproject changed."""
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not (BIN / "python").exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.touch()


def check_line_coverage(report: Path) -> int:
    """Every line of src/ must run (branches are reported, not enforced)."""
    totals = json.loads(report.read_text())["totals"]
    missing = totals["missing_lines"]
    branches = f"{totals['covered_branches']}/{totals['num_branches']} branches"
    if missing:
        print(
            f"FAIL: {missing} line(s) of src/ never ran; line coverage must be 100 % ({branches})."
        )
        return 1
    print(f"Line coverage 100 % of {totals['num_statements']} statements; {branches} covered.")
    return 0


def run(*args: str) -> int:
    return subprocess.run(list(args), cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    task = argv[1] if len(argv) > 1 else "help"
    if task == "install":
        ensure_venv()
        return 0
    if task == "example":
        ensure_venv()
        port = os.environ.get("PORT", "8000")
        return run(
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "--app-dir",
            "examples",
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            port,
        )
    if task == "test":
        ensure_venv()
        report = ROOT / ".coverage.json"
        code = run(
            str(BIN / "python"),
            "-m",
            "pytest",
            "-n",
            "auto",
            "--cov",
            "--cov-branch",
            "--cov-report=term-missing",
            f"--cov-report=json:{report}",
            *argv[2:],
        )
        if code == 0 and not argv[2:]:  # a partial run cannot judge coverage
            code = check_line_coverage(report)
        return code
    print(__doc__)
    return 0 if task in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
