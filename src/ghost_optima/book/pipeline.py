"""The build: check inputs, run the notebooks in order with papermill, render the book.

``build`` does, in order:

1. read every notebook's parameters cell (names, types, defaults, help) and
   ``notebooks/profiles.yml`` (bounds, per-profile values), and resolve the profile with its
   ``--set`` overrides; any bad input raises ``ConfigError`` before work starts;
2. run each notebook (``notebooks/NN_name.md``, numbered order) unless its inputs (source,
   resolved parameters, package sources, lock) hash to what its last successful run recorded;
   a run happens in a child process (``runner``) writing to a scratch path, so an interrupted or
   failed run never replaces a good result; a failed run is kept under ``_build/failed/``;
3. write ``results[/<profile>]/claims.json`` and the generated pages (ledger, reproducibility);
4. assemble the book sources in a work folder, run Jupyter Book there (execution off, warnings
   as errors), and only on success swap the new HTML into place.

The full profile publishes to ``results/`` and ``_build/html``; any other profile ``P`` to
``results/P/`` and ``_build/P/html``, so a quick test build never overwrites the book.
"""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import audit, claims, jupyterbook, pages, profiles, provenance
from .jupyterbook import BuildError
from .profiles import ConfigError
from .record import RESULT_ENV
from .results import load_result, write_json
from .runner import failure_message
from .staging import collapse_inputs

PUBLISHED = "full"
SCIENCE_DIR = Path(__file__).parent.parent
# What a notebook's results depend on: the science modules, and the book modules that record
# figures and turn them into verdicts by the rules. How the book is assembled is left out, so
# that changing it does not re-run every notebook.
RESULT_MODULES = ("claims.py", "claims.yml", "record.py")


@dataclass(frozen=True)
class Project:
    """Where a book's sources and outputs live, relative to its root folder."""

    root: Path

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def book(self) -> Path:
        return self.root / "book"

    def results(self, profile: str) -> Path:
        base = self.root / "results"
        return base if profile == PUBLISHED else base / profile

    def html(self, profile: str) -> Path:
        base = self.root / "_build"
        return base / "html" if profile == PUBLISHED else base / profile / "html"

    def executed(self, profile: str) -> Path:
        return self.book / "_generated" / profile

    def work(self, profile: str) -> Path:
        return self.root / "_build" / ".work" / profile

    def failed(self, profile: str) -> Path:
        return self.root / "_build" / "failed" / profile

    def notebook_sources(self) -> dict[str, Path]:
        return profiles.notebook_paths(self.notebooks)


@dataclass(frozen=True)
class Plan:
    profile: str
    notebooks: dict[str, Path]  # all notebooks of the book, in order
    selected: list[str]  # the ones this build may run
    parameters: dict[str, dict]
    outputs: str  # the key of the output folders: the profile, or a verify run's own
    defaults: dict[str, dict]  # the profile's own parameters, without overrides


def plan(project: Project, profile: str, only=(), overrides=(), outputs=None) -> Plan:
    """Check everything the build will need and resolve parameters; raises ConfigError."""
    declared = profiles.load(project.notebooks)
    sources = project.notebook_sources()
    parameters = declared.resolve(profile, list(overrides))
    defaults = declared.resolve(profile) if overrides else parameters
    selected = list(sources)
    if only:
        selected = [_match(name, sources) for name in only]
        selected = [stem for stem in sources if stem in selected]
    return Plan(profile, sources, selected, parameters, outputs or profile, defaults)


def _match(name: str, sources: dict) -> str:
    hits = [stem for stem in sources if name in (stem, stem.split("_", 1)[1])]
    if len(hits) != 1:
        raise ConfigError(f"--only {name!r}: no such notebook; choose from {list(sources)}")
    return hits[0]


def science_digest(package: Path) -> str:
    """Digest of what results depend on: the science modules and ``RESULT_MODULES``."""
    book = package / "book"
    return provenance.digest(
        provenance.tree_digest(package, ("*.py",), skip_dirs=("book",)).encode(),
        *((book / name).read_bytes() for name in RESULT_MODULES),
    )


def inputs_hash(project: Project, stem: str, params: dict) -> str:
    lock = project.root / "requirements.lock"
    return provenance.digest(
        project.notebook_sources()[stem].read_bytes(),
        provenance.json_digest(params).encode(),
        science_digest(SCIENCE_DIR).encode(),
        lock.read_bytes() if lock.exists() else b"",
    )


def build(
    project: Project,
    profile: str = PUBLISHED,
    *,
    only=(),
    overrides=(),
    force=False,
    outputs=None,
    render_book=True,
    log=print,
):
    """Run the notebooks that need it, then render the book. Raises ConfigError or BuildError."""
    start = time.perf_counter()
    job = plan(project, profile, only, overrides, outputs)
    with _exclusive(project, job.outputs):
        _build(project, job, force, render_book, log)
    log(f"build finished in {time.perf_counter() - start:.1f} s")


@contextlib.contextmanager
def _exclusive(project: Project, outputs: str):
    """One build at a time per output folder: a second one is refused, not interleaved."""
    path = project.root / "_build" / ".locks" / (outputs.replace("/", "_") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another build of {outputs!r} is running in this folder") from None
        yield


def _build(project: Project, job: Plan, force: bool, render_book: bool, log) -> None:
    profile = job.profile
    results = project.results(job.outputs)
    for index, stem in enumerate(job.selected, start=1):
        prefix = f"[{index}/{len(job.selected)}] {stem}"
        params = job.parameters[stem]
        key = inputs_hash(project, stem, params)
        previous = load_result(results / f"{stem}.json")
        executed = project.executed(job.outputs) / f"{stem}.ipynb"
        if not force and previous and previous["inputs_hash"] == key and executed.exists():
            log(f"{prefix}: cached (inputs unchanged)")
            continue
        if previous is None and (results / f"{stem}.json").exists():
            log(f"{prefix}: result file unreadable or altered; running again")
        log(f"{prefix}: running ...")
        seconds = run_notebook(project, job, stem, key)
        log(f"{prefix}: done in {seconds:.1f} s")

    records = {stem: load_result(results / f"{stem}.json") for stem in job.notebooks}
    rows = collect_claims(project, records)
    overridden = overrides_in_force(job, records)
    for row in rows:
        row["overrides"] = overridden.get(row["notebook"], {})
    write_json(results / "claims.json", {"profile": profile, "claims": rows})
    missing = [stem for stem, r in records.items() if r is None]
    if not render_book:
        return
    if missing:
        log(f"book not rendered: no successful run yet of {missing} (build without --only)")
        return
    render(project, profile, records, rows, overridden, log)


def overrides_in_force(job: Plan, records: dict[str, dict | None]) -> dict[str, dict]:
    """Per notebook, the parameters its recorded run used that differ from the profile's own.

    Read from the results, not from this command line: a notebook run with ``--set`` earlier
    and cached since still carries its overrides, and a plain build that re-runs it clears them.
    """
    found = {}
    for stem, record in records.items():
        used = (record or {}).get("provenance", {}).get("parameters", {})
        changed = {k: v for k, v in used.items() if job.defaults[stem].get(k) != v}
        if changed:
            found[stem] = changed
    return found


def run_notebook(project: Project, job: Plan, stem: str, key: str) -> float:
    """Execute one notebook in a child process; on success store its notebook and result."""
    scratch = project.root / "_build" / ".running" / job.outputs / stem
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    output, partial = scratch / f"{stem}.ipynb", scratch / "result.json"
    spec = {
        "source": str(job.notebooks[stem]),
        "output": str(output),
        "parameters": job.parameters[stem],
        "cwd": str(project.notebooks),
        "timeout": 3600,
    }
    (scratch / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    env = {
        **os.environ,
        RESULT_ENV: str(partial),
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    started = time.perf_counter()
    with open(scratch / "kernel.log", "w", encoding="utf-8") as kernel_log:
        done = subprocess.run(
            [sys.executable, "-m", "ghost_optima.book.runner", str(scratch / "job.json")],
            env=env,
            stdout=kernel_log,
            stderr=subprocess.STDOUT,
        )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        kept = project.failed(job.outputs)
        raise BuildError(failure_message(kept, stem, scratch, done.returncode))
    record = json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
    record.update(
        notebook=stem,
        inputs_hash=key,
        provenance={
            **provenance.git_state(project.root),
            "profile": job.profile,
            "parameters": job.parameters[stem],
            "seeds": {k: v for k, v in job.parameters[stem].items() if "seed" in k},
            "threads": record.pop("threads", None) or int(env["OMP_NUM_THREADS"]),
            "wall_seconds": round(seconds, 1),
            "versions": provenance.versions(),
            "machine": provenance.machine(),
        },
    )
    executed = project.executed(job.outputs) / f"{stem}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    os.replace(output, executed)
    write_json(project.results(job.outputs) / f"{stem}.json", record, checksum=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def load_claims(project: Project, profile: str) -> list[dict]:
    """The ledger rows last written for ``profile`` (ConfigError when it was never built)."""
    path = project.results(profile) / "claims.json"
    if not path.exists():
        raise ConfigError(f"no results for profile {profile!r} yet: build it first")
    return json.loads(path.read_text(encoding="utf-8"))["claims"]


def load_robustness(project: Project, profile: str) -> dict:
    path = project.results(profile) / "robustness.json"
    return json.loads(path.read_text(encoding="utf-8"))["claims"] if path.exists() else {}


def collect_claims(project: Project, records: dict[str, dict | None]) -> list[dict]:
    """The ledger: what the notebooks recorded, then the build's own checks (X1, X2), each row
    with its rule's history from git (``audit``) and the commit its results come from."""
    recorded = {}
    for stem, record in records.items():
        for cid, entry in (record or {}).get("claims", {}).items():
            recorded[cid] = {**entry, "notebook": stem}
    from . import summary  # imports the plotting stack: kept off the path that checks input

    recorded.update(summary.deliverables(claims.ledger(recorded)))
    rows = claims.ledger(recorded)
    history = audit.rule_history(project.root)
    for row in rows:
        rule = history.get(row["id"], {})
        record = records.get(row["notebook"]) or {}
        row.update(
            rule_commit=rule.get("rule_commit"),
            rule_date=rule.get("rule_date"),
            rule_flagged=rule.get("flagged"),
            rule_changes=rule.get("changes", []),
            rule_first_verdict=rule.get("first_verdict"),
            results_commit=record.get("provenance", {}).get("commit"),
        )
    return rows


def render(
    project: Project,
    profile: str,
    records: dict[str, dict],
    rows: list[dict],
    overridden: dict[str, dict],
    log=print,
) -> None:
    """Assemble the book's sources and render them (``jupyterbook.build_html``)."""
    files = {
        p.relative_to(project.book): p.read_bytes()
        for p in project.book.rglob("*")
        if p.is_file() and "_generated" not in p.relative_to(project.book).parts
    }
    for stem in records:
        executed = (project.executed(profile) / f"{stem}.ipynb").read_bytes()
        files[Path("_generated") / f"{stem}.ipynb"] = collapse_inputs(executed)
    robustness = load_robustness(project, profile)
    for name, text in pages.generated(profile, records, rows, robustness).items():
        files[Path("_generated") / name] = text.encode("utf-8")
    from . import summary

    for name, data in summary.generated(rows).items():
        files[Path("_generated") / name] = data
    performance = pages.performance_page(pages.load_performance(project.root), records)
    files[Path("_generated") / "performance.md"] = performance.encode("utf-8")
    config = _config_with_banner(project, overridden)
    jupyterbook.build_html(project.work(profile), config, files, project.html(profile), log)


def _config_with_banner(project: Project, overrides: dict[str, dict]) -> bytes:
    """``_config.yml``, with a banner on every page naming the overrides when there are any."""
    import yaml

    config = (project.root / "_config.yml").read_bytes()
    banner = pages.override_banner(overrides)
    if banner is None:
        return config
    settings = yaml.safe_load(config)
    settings.setdefault("html", {})["announcement"] = banner
    return yaml.safe_dump(settings, allow_unicode=True, sort_keys=False).encode("utf-8")
