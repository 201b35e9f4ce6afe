"""python3 -m experiments.ar_twin: the study (experiments/ar_twin/run.py), then its summary."""

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from experiments.ablation.calls import guarded
from experiments.ar_twin.run import study
from experiments.ar_twin.settings import parse_args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def work() -> None:
        study(args)
        from experiments.ar_twin.summary import write_summary

        write_summary(args.output)

    guarded("ar_twin", work)


if __name__ == "__main__":
    main()
