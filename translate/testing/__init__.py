"""Helpers shared by the tests, the notebooks and the benchmarks; not needed to train or translate.

- :mod:`translate.testing.tiny`: the tiny setting (``TINY_OVERRIDES``, ``tiny_config``, the tiny corpus
  ``data/tiny.tsv``, shipped with the package): a model that trains in seconds and exercises every part;
- :mod:`translate.testing.serving_standin`: a TensorFlow-Serving-compatible server (REST and gRPC) for a
  SavedModel export, for where ``tensorflow_model_server`` cannot run.

Importing this package imports neither TensorFlow nor the submodules.
"""
