"""Ray Tune + Optuna entry point (thin: ``python -m tuning.run --config study.yaml``)."""
