"""The benchmark suite: every measurement behind the docs, run as ``python -m benchmarks SUBCOMMAND``.

Run from the repository root (``-m`` puts it on ``sys.path``, so ``translate``
and ``benchmarks`` import as they are). ``python -m benchmarks --help`` lists
the subcommands; ``docs/benchmarks.md`` names each results file's command and
commit. The modules:

* ``harness``: what every benchmark shares: preparing a split into a
  temporary folder, timing a training budget, timing decoding, taking turns
  (in one process or one process per contestant), thread settings, and the
  JSON written with the machine;
* ``compare``: ours against the TensorFlow tutorial's model
  (``baselines/tf_tutorial.py``): ``compare``, ``ours``, ``race``, ``baseline``;
* ``speed``: ``throughput``, ``knobs``, ``scaling``, ``attention``,
  ``pipeline``, ``synthetic-corpus``;
* ``profiling``: ``profile``, ``utilization``, ``sizes``;
* ``quality``: ``quality``, ``curve``, ``beam``;
* ``serving``: ``serving``, ``soak``.
"""
