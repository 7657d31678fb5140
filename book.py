#!/usr/bin/env python3
"""Run, test and hand out the book. Needs only Python 3.10+; installs the rest into ./.venv.

    python3 book.py run [--smoke] [--update-chapters] [CHAPTER ...]   execute the chapters (papermill)
    python3 book.py test [--unit] [--device cuda]                     unit tests, then every chapter (papermill + nbval);
                                                                      --device cuda: the GPU check, with a report
    python3 book.py student [CHAPTER ...]                             student versions (nbgrader) in build/student
    python3 book.py bench [NAME ...]                                  the benchmark scripts in benchmarks/
    python3 book.py site                                              the website, from the committed chapters, in build/site

The first call creates ./.venv and installs requirements.txt into it (again whenever that file
changes); later calls reuse it. `site` and `test` also install requirements-site.txt (the website's
tools), `student` and `test` requirements-instructor.txt (nbgrader). Set BOOK_NO_VENV=1 to use the current interpreter as it is; on Binder that is automatic
(the packages are already installed there, and a venv would pull PyPI's CUDA build of torch).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
SITE_REQUIREMENTS = ROOT / "requirements-site.txt"
INSTRUCTOR_REQUIREMENTS = ROOT / "requirements-instructor.txt"
#: Set in every Binder session (mybinder.org's launcher); binder/start also sets BOOK_NO_VENV=1.
BINDER_VARIABLES = ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_SERVICE_HOST")


# ------------------------------------------------------------------------------------------------
# Bootstrap (standard library only): make sure we run inside an environment with the requirements
# ------------------------------------------------------------------------------------------------
def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def on_binder() -> bool:
    return any(os.environ.get(name) for name in BINDER_VARIABLES)


def install(python: Path, requirements: Path, stamp: Path) -> None:
    """pip install -r ``requirements`` into ``python``'s environment, once per version of that file."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"[book] installing {requirements.name} (once; again only when it changes)", flush=True)
    start = time.time()
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True, cwd=ROOT)
    stamp.write_text(digest)
    print(f"[book] installed in {time.time() - start:.0f} s", flush=True)


def ensure_environment(extra: list[Path] = ()) -> None:
    if os.environ.get("BOOK_NO_VENV") == "1" or on_binder():
        return
    if sys.version_info < (3, 10):
        sys.exit(f"The book needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    python = venv_python()
    inside = Path(sys.prefix).resolve() == VENV.resolve()
    if not inside:
        if not python.exists():
            print(f"[book] creating a virtual environment in {VENV.relative_to(ROOT)}/", flush=True)
            try:
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            except subprocess.CalledProcessError:
                sys.exit("[book] could not create a virtual environment. On Debian/Ubuntu install it with "
                         "`apt install python3-venv`, or install requirements.txt yourself and run with BOOK_NO_VENV=1.")
        install(python, REQUIREMENTS, VENV / ".requirements.sha256")
        for extra_file in extra:
            install(python, extra_file, VENV / f".{extra_file.stem}.sha256")
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


# ------------------------------------------------------------------------------------------------
# Commands (run inside the environment)
# ------------------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    import nbformat

    import notebooks

    if args.update_chapters and args.smoke:
        sys.exit("--update-chapters copies *full* runs into chapters/; it cannot be combined with --smoke")
    out_dir = notebooks.BUILD / ("smoke" if args.smoke else "full")
    paths = notebooks.chapter_paths(args.chapters)
    print(f"[book] executing {len(paths)} chapter(s) at {'smoke' if args.smoke else 'full'} settings -> "
          f"{out_dir.relative_to(notebooks.ROOT)}/", flush=True)
    failed = 0
    for path in paths:
        report = notebooks.execute_chapter(path, smoke=args.smoke, out_dir=out_dir)
        print(report.line(), flush=True)
        if report.error:
            failed += 1
        elif args.update_chapters:
            # the smoke settings' run time goes into the stamp too (the book's landing page lists both)
            smoke = notebooks.execute_chapter(path, smoke=True, out_dir=notebooks.BUILD / "smoke")
            executed = notebooks.strip_injected(notebooks.read(report.output))
            executed.metadata[notebooks.META_KEY]["smoke_seconds"] = None if smoke.error else round(smoke.seconds, 1)
            nb = notebooks.clean_outputs(notebooks.onto_current_source(executed, path))
            nbformat.write(nb, str(path))
            print(f"[book] {path.name} updated (smoke settings: {smoke.seconds:.1f} s)", flush=True)
    print(f"[book] {len(paths) - failed} chapter(s) ran, {failed} failed; executed notebooks and figures "
          f"in {out_dir.relative_to(notebooks.ROOT)}/", flush=True)
    return 1 if failed else 0


def cmd_test_cuda(env: dict) -> int:
    """The whole GPU check in one command: the CUDA tests, then the smoke book with every agent on the GPU."""
    python = sys.executable
    probe = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available() and torch.cuda.get_device_name(0))"],
                           capture_output=True, text=True, cwd=ROOT)
    name = probe.stdout.strip()
    if probe.returncode or name in ("", "False"):
        print("[book] --device cuda: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "nothing to check here. Run it where a GPU and a CUDA build of torch are installed.", flush=True)
        return 1
    env = {**env, "LSTM_RL_DEVICE": "cuda"}
    report = []
    start = time.time()
    rc1 = subprocess.run([python, "-m", "pytest", "tests/test_cuda.py", "-v", "-p", "no:cacheprovider"],
                         cwd=ROOT, env=env).returncode
    report.append(f"CUDA tests (tests/test_cuda.py): {'passed' if rc1 == 0 else 'FAILED'} in {time.time() - start:.0f} s")
    import notebooks

    os.environ["LSTM_RL_DEVICE"] = "cuda"     # the chapters' kernels inherit it: every agent on the GPU
    failed = 0
    for path in notebooks.chapter_paths():
        r = notebooks.execute_chapter(path, smoke=True, out_dir=notebooks.BUILD / "smoke-cuda")
        failed += bool(r.error)
        report.append(r.line())
    print(f"\n[book] GPU report ({name}, LSTM_RL_DEVICE=cuda)", flush=True)
    for line in report:
        print("  " + line, flush=True)
    return 1 if rc1 or failed else 0


def cmd_test(args) -> int:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if args.device == "cuda":
        return cmd_test_cuda(env)
    python = sys.executable
    print("[book] 1/2 unit tests, and every chapter executed with papermill at smoke settings", flush=True)
    selection = ["-m", "not notebooks"] if args.unit else []
    rc = subprocess.run([python, "-m", "pytest", "tests", *selection], cwd=ROOT, env=env).returncode
    if args.unit:
        return rc
    smoke = sorted((ROOT / "build" / "smoke").glob("[0-9][0-9]_*.ipynb"))
    if not smoke:
        print("[book] no executed chapters to check with nbval", flush=True)
        return rc or 1
    print("[book] 2/2 nbval (lax) re-executes the papermill outputs and compares the NBVAL_CHECK_OUTPUT cells",
          flush=True)
    rc2 = subprocess.run([python, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                          "-o", "addopts=", *map(str, smoke)], cwd=ROOT, env=env).returncode
    return rc or rc2


def cmd_student(args) -> int:
    import notebooks

    out_dir = notebooks.BUILD / "student"
    for path in notebooks.write_student_versions(out_dir, args.chapters):
        print(f"[book] wrote {path.relative_to(notebooks.ROOT)}")
    return 0


def cmd_bench(args) -> int:
    rc = 0
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if any(s.stem == f"bench_{n}" or s.stem == n for n in args.names)]
        if not scripts:
            sys.exit(f"no benchmark named {args.names}; there are: {[s.stem[6:] for s in sorted((ROOT / 'benchmarks').glob('bench_*.py'))]}")
    for script in scripts:
        print(f"[book] {script.relative_to(ROOT)}", flush=True)
        rc |= subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode
    return rc


def cmd_site(args) -> int:
    import notebooks

    start = time.time()
    out, warnings = notebooks.build_site(quiet=not args.verbose)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    for w in warnings:
        print("  " + w, flush=True)
    print(f"[book] website in {out.relative_to(ROOT)}/ ({size / 2**20:.1f} MB, {len(warnings)} warning(s)) "
          f"built in {time.time() - start:.0f} s; open {(out / 'index.html').relative_to(ROOT)}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the chapters with papermill into build/")
    run.add_argument("--smoke", action="store_true", help="inject the small settings of chapters/smoke_parameters.json")
    run.add_argument("--update-chapters", action="store_true",
                     help="after a successful full run, copy the executed notebooks back into chapters/")
    run.add_argument("chapters", nargs="*", help="chapter prefixes or names (default: all)")
    test = sub.add_parser("test", help="unit tests, papermill smoke runs, nbval")
    test.add_argument("--unit", action="store_true", help="only the unit tests (no notebook execution)")
    test.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                      help="cuda: the GPU check (CUDA tests + the smoke book on the GPU) with a short report")
    student = sub.add_parser("student", help="write student versions to build/student")
    student.add_argument("chapters", nargs="*")
    bench = sub.add_parser("bench", help="run the benchmark scripts")
    bench.add_argument("names", nargs="*", help="which (e.g. ppo, numpy_lstm); default: all")
    site = sub.add_parser("site", help="build the website from the committed chapters into build/site")
    site.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args()
    extra = {"site": [SITE_REQUIREMENTS], "student": [INSTRUCTOR_REQUIREMENTS],
             "test": [SITE_REQUIREMENTS, INSTRUCTOR_REQUIREMENTS]}.get(args.command, [])
    ensure_environment(extra)
    return {"run": cmd_run, "test": cmd_test, "student": cmd_student, "bench": cmd_bench,
            "site": cmd_site}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
