"""Entry point of a tuning study — locally or as a KubeRay ``RayJob``.

    python -m tuning.run --config tuning/studies/quick.yaml [--smoke-test] [--promote]
        [--model-store URI] [--summary-file PATH_OR_URI]

The study file may also come from the environment (``AUGUR_TUNING_CONFIG``: a path, or
the YAML itself as the ``TuningJob`` operator passes it), and the storage location from
``--storage`` / ``AUGUR_TUNING_STORAGE`` (a path or a URI such as ``s3://bucket/tuning``).
In a KubeRay ``RayJob`` Ray sets ``RAY_ADDRESS`` and the run joins that cluster. Running the same command again
resumes the study from its storage. With ``--promote`` and ``--model-store`` /
``AUGUR_MODEL_STORE`` (a path or an fsspec URI such as ``s3://bucket/augur/models``) the
promoted version is also pushed to that model store, where serving pods pull it. The last
line on stdout is a JSON summary; the same summary is written to ``summary.json`` in the
results folder (and ``--summary-file``, a path or an fsspec URI, written whole).
Exit codes: 0 done, 2 invalid study (or a --summary-file / --model-store URI that cannot
be used: unknown protocol or its package missing — checked before the study runs),
3 every trial failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tuning.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", help="study file (default: $AUGUR_TUNING_CONFIG)")
    parser.add_argument(
        "--smoke-test", action="store_true", help="a few trials, two folds, tiny models"
    )
    parser.add_argument(
        "--promote", action="store_true", help="train and save the winner after the study"
    )
    parser.add_argument(
        "--summary-file",
        help="also write the JSON summary here (path or URI, e.g. s3://bucket/summary.json)",
    )
    parser.add_argument(
        "--model-store",
        default=os.environ.get("AUGUR_MODEL_STORE", ""),
        help="with --promote, push the promoted version to this model store (path or URI, "
        "e.g. s3://bucket/augur/models; default $AUGUR_MODEL_STORE, empty = none)",
    )
    parser.add_argument(
        "--storage",
        default=os.environ.get("AUGUR_TUNING_STORAGE", ""),
        help="override the study's storage (path or URI, e.g. s3://bucket/tuning; "
        "default $AUGUR_TUNING_STORAGE, else the study file's)",
    )
    args = parser.parse_args(argv)

    from augur.models import ModelStoreError
    from augur.tuning import (
        StudyError,
        check_destinations,
        load_study,
        parse_study,
        run_and_report,
        write_summary,
    )

    source = args.config or os.environ.get("AUGUR_TUNING_CONFIG", "")
    try:
        if not source:
            raise StudyError("--config: give a study file (or set AUGUR_TUNING_CONFIG)")
        if Path(source).is_file() or "\n" not in source:
            study = load_study(source)
        else:
            import yaml

            study = parse_study(yaml.safe_load(source))
        model_store = args.model_store if args.promote else ""
        check_destinations(summary_file=args.summary_file, model_store=model_store)
    except (StudyError, ModelStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.storage:
        study = study.model_copy(update={"storage": args.storage})
    summary = run_and_report(
        study, smoke_test=args.smoke_test, promote=args.promote, model_store=model_store or None
    )
    if args.summary_file:
        write_summary(summary, args.summary_file)
    print(json.dumps(summary, default=str), flush=True)
    if summary["trials_complete"] == 0 and summary["trials_pruned"] == 0:
        print(f"error: every trial failed; first error: {summary['first_error']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
