"""Shared test set-up.

OMP_WAIT_POLICY=PASSIVE must be set before torch loads OpenMP: on 2 shared cores, torch's
second thread otherwise spins at every op and makes small-op workloads 5-10x slower."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
