"""The build: check inputs, run the notebooks as tasks (on Dask workers or here), render the book.

``build`` does, in order:

1. read every notebook's parameters cell (names, types, defaults, help) and
   ``notebooks/profiles.yml`` (bounds, per-profile values, the profile's ``threads`` and
   ``replications``), and resolve the profile with its ``--set`` overrides; any bad input
   raises ``ConfigError`` before work starts;
2. list the tasks: each notebook (``notebooks/NN_name.md``, numbered order), and each
   replication of each claim notebook (``verify``); a task whose inputs (source, resolved
   parameters, package sources, lock) hash to what its last successful run recorded is cached;
3. run the others (``cluster``): as tasks on a Dask ``LocalCluster`` of ``cores // threads``
   worker processes by default, on an existing scheduler, or one by one here (``workers=1``);
   a task runs in a scratch folder of its own and sends back plain data, and only this process
   writes results, atomically, one finished task at a time, so an interrupted, failed or
   re-run task never replaces a good result; a failed run is kept under ``_build/failed/``;
4. write ``results[/<profile>]/claims.json`` (with each empirical claim's ``robustness`` and
   ``calibration``), ``robustness.json`` and ``calibration.json`` (for readers: the pages get
   the same reports in memory);
5. assemble the book sources in a work folder, run Jupyter Book there (execution off, warnings
   as errors), and only on success swap the new HTML into place.

The full profile publishes to ``results/`` and ``_build/html``; any other profile ``P`` to
``results/P/`` and ``_build/P/html``, so a quick test build never overwrites the book.
"""

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ghost_optima.book.build import cluster, jupyterbook, profiles, provenance, results
from ghost_optima.book.build.jupyterbook import BuildError
from ghost_optima.book.build.profiles import ConfigError
from ghost_optima.book.build.results import load_result, write_json
from ghost_optima.book.build.staging import collapse_inputs
from ghost_optima.book.pages import ledger
from ghost_optima.book.verdicts import audit, calibration, claims, deliverables, verify

PUBLISHED = "full"
SCIENCE_DIR = Path(__file__).parents[2]
# What a notebook's results depend on: the science modules, and the book modules that record
# figures and turn them into verdicts by the rules. How the book is assembled is left out, so
# that changing it does not re-run every notebook.
RESULT_MODULES = ("verdicts/claims.py", "claims.yml", "verdicts/record.py")


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
    defaults: dict[str, dict]  # the profile's own parameters, without overrides
    threads: int = 1  # torch/BLAS threads of every run, fixed by the profile
    replications: int = 0  # re-seeded runs of each claim notebook
    replicate: list[str] = field(default_factory=list)  # the notebooks replicated


@dataclass(frozen=True)
class Execution:
    """Where tasks run: ``workers`` local processes (None: cores // threads; 1: serially here)
    or the Dask cluster at ``scheduler``; ``replications`` overrides the profile's setting."""

    workers: int | None = None
    scheduler: str | None = None
    replications: int | None = None


def plan(project: Project, profile: str, only=(), overrides=(), replications=None) -> Plan:
    """Check everything the build will need and resolve parameters; raises ConfigError."""
    declared = profiles.load(project.notebooks)
    sources = project.notebook_sources()
    parameters = declared.resolve(profile, list(overrides))
    defaults = declared.resolve(profile) if overrides else parameters
    selected = list(sources)
    if only:
        selected = [_match(name, sources) for name in only]
        selected = [stem for stem in sources if stem in selected]
    if replications is None:
        replications = declared.setting(profile, "replications")
    if replications < 0:
        raise ConfigError(f"--replications must be at least 0, got {replications}")
    replicate = verify.claim_notebooks(selected) if replications else []
    unseeded = [stem for stem in replicate if "seed" not in parameters[stem]]
    if unseeded:
        raise ConfigError(f"claim notebooks without a 'seed' parameter to replicate: {unseeded}")
    threads = declared.setting(profile, "threads")
    return Plan(profile, sources, selected, parameters, defaults, threads, replications, replicate)


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


def inputs_hash(project: Project, stem: str, params: dict, science: str | None = None) -> str:
    """What a run's result depends on; ``science``: ``science_digest`` when already known."""
    lock = project.root / "requirements.lock"
    return provenance.digest(
        project.notebook_sources()[stem].read_bytes(),
        provenance.json_digest(params).encode(),
        (science or science_digest(SCIENCE_DIR)).encode(),
        lock.read_bytes() if lock.exists() else b"",
    )


def tasks(project: Project, job: Plan) -> list[cluster.Task]:
    """The published run of every selected notebook, then each replication of the claim ones."""
    science = science_digest(SCIENCE_DIR)
    found = []
    for replication in range(job.replications + 1):
        stems = job.replicate if replication else job.selected
        outputs = verify.outputs(job.profile, replication) if replication else job.profile
        for stem in stems:
            params = job.parameters[stem]
            if replication:
                params = verify.replica_parameters(params, replication)
            key = inputs_hash(project, stem, params, science)
            found.append(cluster.Task(stem, replication, outputs, params, key))
    return found


def build(
    project: Project,
    profile: str = PUBLISHED,
    *,
    only=(),
    overrides=(),
    force=False,
    render_book=True,
    log=print,
    run: Execution = Execution(),
):
    """Run the tasks that need it, then render the book. Raises ConfigError or BuildError."""
    start = time.perf_counter()
    job = plan(project, profile, only, overrides, run.replications)
    with _exclusive(project, job.profile):
        _build(project, job, force, render_book, log, run)
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


def _build(project: Project, job: Plan, force: bool, render_book: bool, log, run: Execution):
    profile = job.profile
    folder = project.results(profile)
    every = tasks(project, job)
    pending = []
    for index, task in enumerate(every, start=1):
        prefix = f"[{index}/{len(every)}] {task.label}"
        path = project.results(task.outputs) / f"{task.stem}.json"
        previous = load_result(path)
        executed = project.executed(task.outputs) / f"{task.stem}.ipynb"
        if not force and previous and previous["inputs_hash"] == task.key and executed.exists():
            log(f"{prefix}: cached (inputs unchanged)")
            continue
        if previous is None and path.exists():
            log(f"{prefix}: result file unreadable or altered; running again")
        log(f"{prefix}: running ...")
        pending.append(task)
    if pending:
        run_notebook(project, job, pending, run, log)
    stamp = results.book_stamp(project, profile, every) if render_book else None
    rendered = (project.html(profile) / "index.html").exists()
    if not pending and rendered and stamp == results.read_stamp(project.work(profile)):
        log("book: unchanged, not rebuilt")  # nothing ran, and no input of the pages changed
        return
    results.write_stamp(project.work(profile), None)

    records = {stem: load_result(folder / f"{stem}.json") for stem in job.notebooks}
    rows = collect_claims(project, records)
    overridden = overrides_in_force(job, records)
    for row in rows:
        row["overrides"] = overridden.get(row["notebook"], {})
    whole = every_notebook(job)
    runs = replicas(project, job, every if whole == job else tasks(project, whole))
    found = verify.report(rows, runs)
    verify.attach(rows, found)
    calibrated = calibration.report(rows, found["claims"])
    calibration.attach(rows, calibrated)
    write_json(folder / "robustness.json", {"profile": profile, **found})
    write_json(folder / "calibration.json", {"profile": profile, **calibrated})
    write_json(folder / "claims.json", {"profile": profile, "claims": rows})
    missing = [stem for stem, r in records.items() if r is None]
    if not render_book:
        return
    if missing:
        log(f"book not rendered: no successful run yet of {missing} (build without --only)")
        return
    render(project, profile, records, rows, found["claims"], runs, overridden, log)
    results.write_stamp(project.work(profile), stamp)


def every_notebook(job: Plan) -> Plan:
    """``job`` widened to the whole book: the robustness report covers every claim notebook,
    also after a build ``--only`` some of them (their replications are read, not run)."""
    stems = list(job.notebooks)
    return replace(
        job, selected=stems, replicate=verify.claim_notebooks(stems) if job.replications else []
    )


def replicas(project: Project, job: Plan, every: list[cluster.Task]) -> list[dict]:
    """Per replication, notebook -> its result when it is current (its inputs hash matches)."""
    found = [{} for _ in range(job.replications)]
    for task in every:
        if task.replication:
            record = load_result(project.results(task.outputs) / f"{task.stem}.json")
            current = record is not None and record["inputs_hash"] == task.key
            found[task.replication - 1][task.stem] = record if current else None
    return found


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


def run_notebook(project: Project, job: Plan, pending: list, run: Execution, log) -> None:
    """Run ``pending`` (``cluster``), storing each result as its task finishes."""
    workers = run.workers or cluster.default_workers(job.threads)
    cores = os.cpu_count() or 1
    if run.scheduler is None and workers * job.threads > cores:
        log(f"note: {workers} workers x {job.threads} threads exceed the {cores} cores here")
    workers = min(workers, len(pending)) if run.scheduler is None else workers
    git = provenance.git_state(project.root)
    source = cluster.source_hash()
    priorities = [results.last_seconds(project, job.profile, t.stem) for t in pending]
    specs = [cluster.task_spec(project, job, task) for task in pending]
    by_spec = {id(spec): task for spec, task in zip(specs, pending, strict=True)}
    with cluster.open_executor(workers, run.scheduler, log) as executor:
        try:
            for done, (spec, payload) in enumerate(executor.run(specs, priorities), start=1):
                task = by_spec[id(spec)]
                results.store(project, job, task, payload, {**git, "source_hash": source})
                log(
                    f"{task.label}: done in {payload['seconds']:.1f} s on {payload['where']} "
                    f"({done} done, {len(pending) - done} left)"
                )
        except cluster.TaskLost as err:
            raise BuildError(f"{err}; the book was not changed") from err


def collect_claims(project: Project, records: dict[str, dict | None]) -> list[dict]:
    """The ledger: what the notebooks recorded, then the build's own checks (X1, X2), each row
    with its rule's history from git (``audit``) and the commit its results come from."""
    recorded = {}
    for stem, record in records.items():
        for cid, entry in (record or {}).get("claims", {}).items():
            recorded[cid] = {**entry, "notebook": stem}
    recorded.update(deliverables.deliverables(claims.ledger(recorded)))
    rows = claims.ledger(recorded)
    history = audit.rule_history(project.root)
    for row in rows:
        rule = history.get(row["id"], {})
        record = records.get(row["notebook"]) or {}
        results_commit = record.get("provenance", {}).get("commit")
        row.update(
            rule_commit=rule.get("rule_commit"),
            rule_date=rule.get("rule_date"),
            rule_flagged=rule.get("flagged"),
            rule_changes=rule.get("changes", []),
            rule_first_verdict=rule.get("first_verdict"),
            rule_sha=record.get("claims", {}).get(row["id"], {}).get("rule_sha"),
            rule_before_results=audit.is_ancestor(
                project.root, rule.get("rule_commit"), results_commit
            ),
            results_commit=results_commit,
        )
        row["rule_standing"] = audit.standing(row)
    return rows


def render(
    project: Project,
    profile: str,
    records: dict[str, dict],
    rows: list[dict],
    robustness: dict[str, dict],
    runs: list[dict],
    overridden: dict[str, dict],
    log=print,
) -> None:
    """Assemble the book's sources and render them (``jupyterbook.build_html``).

    ``robustness``: the replications of each claim (``verify.report``'s ``claims``), as this
    build computed them (``robustness.json`` is written for readers, never read back); ``runs``:
    the replications' records (``replicas``), whose seconds the performance page counts."""
    files = {
        p.relative_to(project.book): p.read_bytes()
        for p in project.book.rglob("*")
        if p.is_file() and "_generated" not in p.relative_to(project.book).parts
    }
    for stem in records:
        executed = (project.executed(profile) / f"{stem}.ipynb").read_bytes()
        files[Path("_generated") / f"{stem}.ipynb"] = collapse_inputs(executed)
    for name, text in ledger.generated(profile, records, rows, robustness).items():
        files[Path("_generated") / name] = text.encode("utf-8")
    from ghost_optima.book.pages import summary

    for name, data in summary.generated(rows).items():
        files[Path("_generated") / name] = data
    performance = ledger.performance_page(ledger.load_performance(project.root), records, runs)
    files[Path("_generated") / "performance.md"] = performance.encode("utf-8")
    config = _config_with_banner(project, overridden)
    jupyterbook.build_html(project.work(profile), config, files, project.html(profile), log)


def _config_with_banner(project: Project, overrides: dict[str, dict]) -> bytes:
    """``_config.yml``, with a banner on every page naming the overrides when there are any."""
    import yaml

    config = (project.root / "_config.yml").read_bytes()
    banner = ledger.override_banner(overrides)
    if banner is None:
        return config
    settings = yaml.safe_load(config)
    settings.setdefault("html", {})["announcement"] = banner
    return yaml.safe_dump(settings, allow_unicode=True, sort_keys=False).encode("utf-8")
