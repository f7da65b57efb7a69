"""The evaluation protocols of the project's conventions, each on any device.

- :mod:`.features`: pooled features of a model over a dataset (uint8 batches go to the
  device and are normalised there);
- :mod:`.knn`: weighted k-NN top-1 (k = 200, T = 0.1, cosine);
- :mod:`.linear`: linear probe on frozen features, weight decay chosen on held-out train;
- :mod:`.finetune`: backbone + a new head trained end to end.

``python -m training knn|linear|finetune`` (:mod:`training.evaluate`) runs them from the
command line; ``export`` measures the shipped numbers with them.
"""
