"""``ghost-optima``: build the book, or list what a notebook takes.

Exit status: 0 on success, 1 when a notebook or the book fails, 2 on bad input (checked before
anything runs). Heavy imports stay inside the pipeline, so bad input is refused in a second.
"""

import argparse
import json
import sys
from pathlib import Path

from ghost_optima.book.build import pipeline, profiles

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghost-optima", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project folder (default: .)")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="run the notebooks that need it and render the book")
    build.add_argument("--profile", default=pipeline.PUBLISHED, help="full (published) or quick")
    build.add_argument(
        "--only", nargs="+", default=(), metavar="NAME", help="run only these notebooks"
    )
    build.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (KEY or NOTEBOOK.KEY); repeatable",
    )
    build.add_argument("--force", action="store_true", help="run even when inputs are unchanged")
    build.add_argument(
        "--replications",
        type=int,
        default=None,
        metavar="N",
        help="re-seeded runs of each claim notebook (default: the profile's, in profiles.yml)",
    )
    _cluster_options(build)

    verify = commands.add_parser(
        "verify", help="build with K replications of each claim notebook (other base seeds)"
    )
    verify.add_argument("--seeds", type=int, required=True, help="how many other base seeds")
    verify.add_argument("--profile", default=pipeline.PUBLISHED)
    _cluster_options(verify)

    bench = commands.add_parser("bench", help="time cold and cached builds and the benchmarks")
    bench.add_argument("--profiles", nargs="+", default=["quick", pipeline.PUBLISHED])
    bench.add_argument(
        "--in-place",
        nargs="+",
        default=(),
        metavar="PROFILE",
        help="time these profiles in the project itself (forced cold run that also publishes)",
    )
    bench.add_argument("--no-micro", action="store_true", help="skip benchmarks/*.py")

    cut = commands.add_parser(
        "cut-check",
        help="whether a smaller profile kept every verdict (exit 1 where one moved)",
    )
    cut.add_argument("before", type=Path, help="robustness.json of the full build before the cut")
    cut.add_argument("after", type=Path, help="robustness.json of the full build after it")

    params = commands.add_parser("params", help="list every notebook parameter and its values")
    params.add_argument("--profile", default=pipeline.PUBLISHED)
    return parser


def _cluster_options(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="local Dask worker processes (default: cores // the profile's threads; 1: serial)",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the tasks on the Dask cluster at ADDRESS (e.g. tcp://host:8786)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    project = pipeline.Project(args.root.resolve())
    try:
        if args.command == "params":
            return _list_params(project, args.profile)
        if args.command == "cut-check":
            return _cut_check(args.before, args.after)
        if args.command == "bench":
            from ghost_optima.book.build.bench import bench

            bench(
                project,
                args.profiles,
                in_place=args.in_place,
                micro=not args.no_micro,
                log=lambda text: print(text, flush=True),
            )
            for profile in args.in_place:  # re-render so the performance page shows the table
                pipeline.build(project, profile, log=lambda text: print(text, flush=True))
            return 0
        if args.command == "verify":
            if args.seeds < 1:
                raise profiles.ConfigError(f"--seeds must be at least 1, got {args.seeds}")
            run = pipeline.Execution(args.workers, args.scheduler, args.seeds)
            pipeline.build(project, args.profile, log=_print, run=run)
            return 0
        pipeline.build(
            project,
            args.profile,
            only=args.only,
            overrides=args.overrides,
            force=args.force,
            log=_print,
            run=pipeline.Execution(args.workers, args.scheduler, args.replications),
        )
    except profiles.ConfigError as err:
        print(f"ghost-optima: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except pipeline.BuildError as err:
        print(f"ghost-optima: build failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            "ghost-optima: interrupted; tasks cancelled, finished notebooks are kept, "
            "the book was not changed",
            file=sys.stderr,
        )
        return 130
    return 0


def _print(text: str) -> None:
    print(text, flush=True)


def _cut_check(before: Path, after: Path) -> int:
    from ghost_optima.book.verdicts.verify import cut_holds

    reports = []
    for path in (before, after):
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            message = f"cannot read a robustness report at {path}: {err}"
            raise profiles.ConfigError(message) from None
    found = cut_holds(*reports)
    print("| claim | before: verdict, agreeing replications | after | holds |")
    print("|---|---|---|---|")
    for cid, entry in found.items():
        (v0, a0, n0), (v1, a1, n1) = entry["before"], entry["after"]
        holds = "yes" if entry["holds"] else "NO"
        print(f"| {cid} | {v0}, {a0}/{n0} | {v1}, {a1}/{n1} | {holds} |")
    return 0 if all(entry["holds"] for entry in found.values()) else EXIT_FAILED


def _list_params(project: pipeline.Project, profile: str) -> int:
    declared = profiles.load(project.notebooks)
    declared.check_profile(profile)
    for notebook, params in declared.notebooks.items():
        print(notebook)
        for name, p in params.items():
            print(f"  {name:<22} {p.type:<12} {p.values[profile]!r:<24} {p.help}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
