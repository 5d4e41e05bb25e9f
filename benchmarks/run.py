#!/usr/bin/env python3
"""Benchmark clerk-asgi against fastapi-clerk-auth and clerk-backend-api, in one command.

    python3 benchmarks/run.py                 # full run (3-4 min): in-process table + uvicorn/wrk
    python3 benchmarks/run.py --quick         # ~20 s in-process run (results/quick.*)
    python3 benchmarks/run.py --e2e           # only uvicorn + wrk on 127.0.0.1
    python3 benchmarks/run.py --memory        # 200,000 distinct tokens: RSS growth
    python3 benchmarks/run.py --instructions  # instructions per request (callgrind), no noise
    python3 benchmarks/run.py --profile ours-repeat   # pyinstrument report of one variant
    python3 benchmarks/run.py --list          # variant names

The first run creates ``benchmarks/.venv-bench`` (this project editable, plus
``benchmarks/requirements.txt``) and every run re-executes itself inside it; it is rebuilt when
``requirements.txt`` or ``pyproject.toml`` change. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv-bench"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
STAMP = VENV / ".bench-requirements.sha256"


def _wanted_stamp() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    command = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own venv's pip, fixed arguments
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"pip failed: {' '.join(command)}")


def bootstrap() -> None:
    """Create or refresh the benchmark venv, then re-execute this script inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if os.environ.get("CLERK_ASGI_BENCH_REEXEC"):
        raise SystemExit(f"re-executed but not inside {VENV}: remove it and retry")
    wanted = _wanted_stamp()
    if not (VENV_PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted):
        print(f"setting up {VENV.relative_to(ROOT)} (one time) ...", file=sys.stderr, flush=True)
        if not VENV_PYTHON.exists():
            venv.create(VENV, with_pip=True)
        _pip("install", "--quiet", "-e", str(ROOT), "-r", str(REQUIREMENTS))
        STAMP.write_text(wanted)
    os.environ["CLERK_ASGI_BENCH_REEXEC"] = "1"
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])  # noqa: S606 - re-exec of this script in its venv


def _git_revision() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", "-C", str(ROOT), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + ("+dirty" if git("status", "--porcelain", "--", "src") else "")


def environment(command: str) -> dict[str, Any]:
    from common import machine, versions

    return {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "revision": _git_revision(),
        "machine": machine(),
        "versions": versions(),
    }


def run_micro_and_e2e(args: argparse.Namespace) -> int:
    import load
    import micro
    from common import RESULTS_DIR, describe_environment, log, write_json

    settings = micro.QUICK if args.quick else micro.FULL
    command = "python3 benchmarks/run.py" + (" --quick" if args.quick else "")
    env = environment(command)
    log(describe_environment(env))
    results = micro.main(settings)
    checks = micro.targets(results)
    e2e: dict[str, Any] | None = None
    if not args.quick and not args.no_e2e:
        if load.wrk_path() is None:
            log(load.INSTALL_HINT)
        else:
            e2e = load.run(duration=args.duration, pairs=args.pairs)
            checks.append(load.target(e2e))

    name = "quick" if args.quick else "latest"
    data = {"environment": env, "micro": results, "e2e": e2e, "targets": checks}
    write_json(RESULTS_DIR / f"{name}.json", data)
    (RESULTS_DIR / f"{name}.md").write_text(render_markdown(data))

    print()
    print(describe_environment(env))
    print(f"raw RSA verify: {results['raw_verify_us']:.2f} µs (thread CPU time, medians)")
    print()
    print(micro.render(results, markdown=False))
    if e2e is not None:
        print()
        print(load.render(e2e, markdown=False))
    print()
    print("Targets:")
    print(micro.render_targets(checks, markdown=False))
    for floor in micro.floors(results):
        print(f"\n{floor}")
    print(f"\nwritten: benchmarks/results/{name}.json, benchmarks/results/{name}.md")
    return 0


def render_markdown(data: dict[str, Any]) -> str:
    import load
    import micro
    from common import describe_environment

    env = data["environment"]
    parts = [
        "# clerk-asgi benchmark results",
        "",
        f"`{env['command']}` on {env['date']} (revision {env['revision']}).",
        "",
        "```",
        describe_environment(env),
        "```",
        "",
        f"One raw RSA verify: **{data['micro']['raw_verify_us']:.2f} µs**. Figures are medians of "
        "per-request thread CPU time over interleaved repeats; overhead = variant minus its "
        "baseline in the same repeat.",
        "",
        micro.render(data["micro"], markdown=True),
    ]
    if data.get("e2e"):
        parts += ["", load.render(data["e2e"], markdown=True)]
    parts += [
        "",
        "## Targets",
        "",
        micro.render_targets(data["targets"], markdown=True),
    ]
    for floor in micro.floors(data["micro"]):
        parts += ["", floor]
    return "\n".join(parts) + "\n"


def run_e2e(args: argparse.Namespace) -> int:
    import load
    from common import RESULTS_DIR, describe_environment, log, write_json

    if load.wrk_path() is None:
        log(load.INSTALL_HINT)
        return 2
    env = environment("python3 benchmarks/run.py --e2e")
    log(describe_environment(env))
    e2e = load.run(duration=args.duration, pairs=args.pairs)
    check = load.target(e2e)
    write_json(RESULTS_DIR / "e2e.json", {"environment": env, "e2e": e2e, "target": check})
    print(load.render(e2e, markdown=False))
    print(f"  [{'MET' if check['met'] else 'NOT MET':^7}] {check['target']}: {check['figures']}")
    return 0


def run_memory(args: argparse.Namespace) -> int:
    import memory
    from common import RESULTS_DIR, describe_environment, log, write_json

    env = environment(f"python3 benchmarks/run.py --memory --tokens {args.tokens}")
    log(describe_environment(env))
    result = memory.run(args.tokens)
    write_json(RESULTS_DIR / "memory.json", {"environment": env, "memory": result})
    text = memory.render(result, markdown=True)
    (RESULTS_DIR / "memory.md").write_text(
        f"# Memory: {args.tokens:,} distinct tokens\n\n```\n{describe_environment(env)}\n```\n\n"
        + text
        + "\n"
    )
    print(memory.render(result, markdown=False))
    return 0


def run_instructions(args: argparse.Namespace) -> int:
    import instructions
    from common import RESULTS_DIR, describe_environment, log, write_json

    if instructions.valgrind_path() is None:
        log(instructions.INSTALL_HINT)
        return 2
    env = environment("python3 benchmarks/run.py --instructions")
    log(describe_environment(env))
    result = instructions.run()
    write_json(RESULTS_DIR / "instructions.json", {"environment": env, "instructions": result})
    (RESULTS_DIR / "instructions.md").write_text(
        "# Instructions per request (callgrind)\n\n"
        f"`{env['command']}` on {env['date']} (revision {env['revision']}).\n\n"
        f"```\n{describe_environment(env)}\n```\n\n"
        f"{result['requests']:,} requests per variant; one raw RSA verify executes "
        f"{result['rsa_verify_instructions']:,} instructions. Counts, not time: see "
        "benchmarks/README.md.\n\n" + instructions.render(result, markdown=True) + "\n"
    )
    print(instructions.render(result, markdown=False))
    print("written: benchmarks/results/instructions.json, benchmarks/results/instructions.md")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    import profiling
    from common import RESULTS_DIR

    report = profiling.run(args.profile, seconds=args.seconds)
    path = RESULTS_DIR / f"profile-{args.profile.replace(' ', '-').strip('()')}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
    print(report)
    print(f"written: benchmarks/results/{path.name}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 benchmarks/run.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--quick", action="store_true", help="~20 s in-process run, no e2e")
    what.add_argument("--e2e", action="store_true", help="only the uvicorn + wrk load test")
    what.add_argument("--memory", action="store_true", help="RSS growth over distinct tokens")
    what.add_argument(
        "--instructions", action="store_true", help="instructions per request (callgrind)"
    )
    what.add_argument("--profile", metavar="VARIANT", help="pyinstrument report of one variant")
    what.add_argument("--list", action="store_true", help="list the variant names")
    p.add_argument("--no-e2e", action="store_true", help="full run without the load test")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    p.add_argument("--pairs", type=int, default=6, help="wrk runs per server (default 6)")
    p.add_argument("--tokens", type=int, default=200_000, help="--memory: tokens (200,000)")
    p.add_argument("--seconds", type=float, default=4.0, help="--profile: seconds (default 4)")
    return p


def main() -> int:
    args = parser().parse_args()
    bootstrap()
    sys.path.insert(0, str(BENCH_DIR))
    from common import guard_network

    guard_network()
    if args.list:
        import profiling

        print("\n".join(profiling.variant_names()))
        return 0
    if args.e2e:
        return run_e2e(args)
    if args.memory:
        return run_memory(args)
    if args.instructions:
        return run_instructions(args)
    if args.profile:
        return run_profile(args)
    return run_micro_and_e2e(args)


if __name__ == "__main__":
    raise SystemExit(main())
