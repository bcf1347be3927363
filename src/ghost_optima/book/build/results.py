"""Result files: written atomically and sealed with a checksum; an altered one is not trusted.

``store`` is where a finished task (``cluster.run_task``'s plain data) becomes files: the
executed notebook, then the sealed result with its provenance, each by an atomic rename, in this
process only. ``project`` is a ``pipeline.Project``, ``job`` a ``pipeline.Plan`` and ``task`` a
``cluster.Task``.
"""

import json
import os
from pathlib import Path

from ghost_optima.book.build import cluster, provenance
from ghost_optima.book.build.jupyterbook import BuildError
from ghost_optima.book.build.runner import failure_message


def load_result(path: Path) -> dict | None:
    """A result file, or None when it is missing, unreadable or altered since it was written."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    checksum = record.pop("checksum", None)
    return record if checksum == provenance.json_digest(record) else None


def write_json(path: Path, record: dict, *, checksum: bool = False) -> None:
    """Write atomically (temp file, then rename), optionally sealing with a checksum."""
    if checksum:
        record = {**record, "checksum": provenance.json_digest(record)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def last_seconds(project, profile: str, stem: str) -> int:
    """The last recorded wall time of a notebook (10**6 if none): long runs are started first."""
    record = load_result(project.results(profile) / f"{stem}.json") or {}
    return int(record.get("provenance", {}).get("wall_seconds", 10**6))


def store(project, job, task, payload: dict, state: dict) -> None:
    """Write one finished task's executed notebook and sealed result (or raise on a failure).

    ``state``: the client's git state and ``source_hash``; a result computed from other source
    (a worker that joined the cluster after the check) is refused. The client's hash is taken
    again before refusing, in case the checkout itself changed during the build.
    """
    if payload["returncode"] != 0:
        raise BuildError(failure_message(project.failed(job.profile), task.stem, payload))
    if payload["source_hash"] not in (state["source_hash"], cluster.source_hash()):
        raise BuildError(
            f"notebook {task.label} ran at {payload['where']} on source hash "
            f"{payload['source_hash'][:12]}, the client's is {state['source_hash'][:12]}: "
            "refused; install the same checkout and lock on every worker"
        )
    record = dict(payload["record"])
    torch_threads = record.pop("threads", None)
    kernels = record.pop("kernels", {})
    record.update(
        notebook=task.stem,
        inputs_hash=task.key,
        provenance={
            "commit": state.get("commit"),
            "dirty": state.get("dirty"),
            "profile": job.profile,
            "replication": task.replication,
            "parameters": task.parameters,
            "seeds": {k: v for k, v in task.parameters.items() if "seed" in k},
            "threads": job.threads,
            "torch_threads": torch_threads,
            "wall_seconds": round(payload["seconds"], 1),
            "kernels": kernels,
            "ran_on": payload["where"],
            "versions": payload["versions"],
            "machine": payload["machine"],
        },
    )
    executed = project.executed(task.outputs) / f"{task.stem}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    scratch = executed.with_name(executed.name + ".tmp")
    scratch.write_bytes(payload["notebook"])
    os.replace(scratch, executed)
    write_json(project.results(task.outputs) / f"{task.stem}.json", record, checksum=True)


STAMP = "inputs.stamp"


def book_stamp(project, profile: str, tasks: list) -> str:
    """Digest of everything a rendered book is made from, besides the runs' results themselves:
    the tasks' inputs hashes and result files, the other files in the profile's results folder
    and ``results/performance.json``, the book's sources and configuration, the whole package
    source (pages, rules, summaries) and the git commit (rule history, results commit). When it
    matches the one stored with the last rendered book and nothing ran, the build stops early."""
    folder = project.results(profile)
    written = {folder / name for name in ("claims.json", "robustness.json", "calibration.json")}
    files = [project.results(t.outputs) / f"{t.stem}.json" for t in tasks]
    files += [p for p in sorted(folder.glob("*.json")) if p not in written and p not in files]
    files += [project.root / "results" / "performance.json", project.root / "_config.yml"]
    return provenance.digest(
        profile.encode(),
        *(t.key.encode() for t in tasks),
        *(p.read_bytes() if p.exists() else b"-" for p in files),
        provenance.tree_digest(project.book, ("*",), skip_dirs=("_generated",)).encode(),
        cluster.source_hash().encode(),
        str(provenance.git_state(project.root)).encode(),
    )


def read_stamp(work: Path) -> str | None:
    """The stamp stored with the last rendered book (None when there is none, or no book)."""
    path = work / STAMP
    return path.read_text(encoding="utf-8") if path.exists() else None


def write_stamp(work: Path, stamp: str | None) -> None:
    """Store ``stamp`` with the rendered book, or (None) forget it before the pages change."""
    path = work / STAMP
    if stamp is None:
        path.unlink(missing_ok=True)
        return
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(stamp, encoding="utf-8")
