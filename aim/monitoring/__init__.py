"""Monitoring of the served models with Evidently, one replay window at a time.

Each window of labelled traffic (written by ``aim replay``) is checked three ways:

- **drift** of the model fields against the training window (:mod:`aim.monitoring.reports`);
- **quality per arm**: AUC, log loss, CTR, CTR of the top-k ranked items, calibration
  (:mod:`aim.monitoring.figures`);
- **A/B**: the challenger (treatment) against the DeepFM control on the same window, with
  unpaired bootstrap intervals (:mod:`aim.monitoring.bootstrap`) and the PSI of the two score
  distributions.

Modules: :mod:`~aim.monitoring.windows` reads the replay output, :mod:`~aim.monitoring.frames`
builds the pandas frames and Evidently datasets, :mod:`~aim.monitoring.reports` runs the Evidently
reports and reads their tests, :mod:`~aim.monitoring.window` puts one window together and
:mod:`~aim.monitoring.workspace` keeps the Evidently workspace (project, runs, dashboard).
"""
