"""Evaluation protocols that measure a backbone: ``knn``, ``linear``, ``finetune`` on ``features``.

``commands`` is the CLI (``python -m training knn | linear | finetune``), ``loading`` finds what is
evaluated (a run, a released weight or a folder), ``plot_plan`` draws a run's transport plan.
Imports ``training.run`` (device, data, augmentation), never ``training.release``.
"""
