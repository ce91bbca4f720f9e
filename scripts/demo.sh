#!/usr/bin/env bash
# The main job end to end on embedded defaults — the same commands a user types.
# Everything lands under $AUGUR_HOME (default ./.augur): bars, features, the Feast
# registry and SQLite online store, the BentoML model store, tuning results, reports.
set -euo pipefail
export COLUMNS="${COLUMNS:-200}"  # wide tables even when not on a terminal
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

step "real market bars from packaged sample data (EURUSD 1h; SP500, NASDAQ, AAPL, GOOG, IBM, MSFT daily)"
augur data sample

step "features: offline parquet → Feast apply → materialize into the SQLite online store"
augur features build
augur features apply
augur features materialize
augur features show

step "train the ensemble (RF, XGBoost, SVM, LogReg) on EURUSD and save a version in the BentoML model store"
augur train --symbols EURUSD
augur models list

step "purged walk-forward backtest with baselines (HTML report)"
augur backtest --quick

step "decision rules: one evolution round offline (local proposer), judged walk-forward; the gate's verdict"
augur rules evolve --local --rounds 1

step "Monte Carlo: 1,000,000 paths of the decision rules over the out-of-sample outcomes"
augur simulate --n 1000000 --seed 7

step "tuning: Ray Tune + Optuna over models and decision thresholds; promote the winner as a new version"
augur tune --config tuning/studies/quick.yaml --promote

step "serving: bentoml serve with the promoted version as a 20% canary and a 100% shadow; outcomes; report"
python scripts/demo_serving.py

step "live bars: a replay of the last 24 EURUSD hours on the feed clock (AUGUR_CLOCK=feed); a decision printed as each bar arrives"
python scripts/demo_stream.py

step "Kubernetes: a real control plane with kwok nodes, the operator, a DecisionService with the tuned version as a canary"
if command -v go >/dev/null; then
  python scripts/demo_cluster.py
else
  echo "skipped: Go is not on PATH (the control plane is built from Go modules)"
fi

step "done — reports in ${AUGUR_HOME:-.augur}/reports and tuning dashboards in the study's results folder"
ls -1 "${AUGUR_HOME:-.augur}/reports"
