"""Distribution strategies for ``fit``: one device, all local devices, several machines.

``train.strategy`` picks one:

* ``default``: TensorFlow's default strategy (one device, no replication).
* ``mirrored``: :class:`tf.distribute.MirroredStrategy`, synchronous data
  parallelism over every local GPU, or over every logical CPU device when
  there is no GPU.
* ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`,
  synchronous data parallelism over the machines listed in the ``TF_CONFIG``
  environment variable (every local GPU of each, or its CPU).

``train.batch_size`` is always the *global* batch: every step consumes one
batch of that many sentence pairs, split evenly over all replicas, so a run
sees the same data per step whatever the number of devices.

Keras 3.15 on TensorFlow 2.21 breaks in ``fit`` under both strategies; the
workarounds are in :func:`_work_around_keras_distribution_bugs`, each naming
the issue it works around.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"


def read_tf_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The parsed ``TF_CONFIG``, checked enough that a mistake fails with one clear line.

    Raises:
        ValueError: unset, not JSON, or without a ``cluster`` that lists the ``task``.
    """
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "")
    if not raw.strip():
        raise ValueError(
            f"train.strategy=multi_worker needs the {TF_CONFIG} environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}})'
        )
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{TF_CONFIG} is not valid JSON: {err}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f'{TF_CONFIG} needs a "cluster" with a "worker" list of host:port addresses')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f'{TF_CONFIG} needs a "task" with "type" and "index", e.g. {{"type": "worker", "index": 0}}')
    hosts = cluster.get(task["type"])
    if not isinstance(hosts, list) or not isinstance(task["index"], int) or not 0 <= task["index"] < len(hosts):
        raise ValueError(f"{TF_CONFIG} task {task['type']}:{task['index']} is not in its cluster {cluster}")
    return tf_config


def is_chief(strategy_name: str, environ: dict[str, str] | None = None) -> bool:
    """Whether this process writes the run's outputs (always, unless it is a non-chief worker).

    As in ``tf.distribute``, the chief is the ``chief`` task if the cluster
    has one, else worker 0.
    """
    if strategy_name != "multi_worker":
        return True
    tf_config = read_tf_config(environ)
    task = tf_config["task"]
    if tf_config["cluster"].get("chief"):
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def worker_name(strategy_name: str, environ: dict[str, str] | None = None) -> str:
    """``chief`` or e.g. ``worker-1``: tells apart the folders and log lines of a cluster's processes."""
    if is_chief(strategy_name, environ):
        return "chief"
    task = read_tf_config(environ)["task"]
    return f"{task['type']}-{task['index']}"


def output_dir(run_dir: Path, strategy_name: str) -> Path:
    """Where this process writes best weights, history, logs and its config copy.

    The chief writes into the run folder. Every other worker computes the same
    weights and runs the same callbacks (saving can involve collective ops that
    need every worker), but into a throw-away folder, so that workers sharing
    storage never write the same file (the TensorFlow multi-worker Keras
    tutorial does the same).
    """
    if is_chief(strategy_name):
        return run_dir
    tmp = Path(tempfile.mkdtemp(prefix=f"translate-{worker_name(strategy_name)}-"))
    # Needed until train() has loaded the best weights back; nobody reads it after the process ends.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    log.info("not the chief: writing this worker's copies of the run outputs to %s", tmp)
    return tmp


def worker_backup_dir(run_dir: Path, name: str, strategy_name: str) -> Path:
    """Where this process keeps its ``BackupAndRestore`` state: ``run_dir/NAME`` for the
    chief, ``run_dir/NAME-worker-N`` for the other workers.

    After a restart every worker must resume from the same epoch, so each
    keeps its backup in the run folder (never in a temporary one), and in its
    own folder: Keras's BackupAndRestore writes the same file names on every
    worker, so workers sharing storage must not share it.
    """
    worker = worker_name(strategy_name)
    return run_dir / (name if worker == "chief" else f"{name}-{worker}")


def load_prepared_for_workers(config):
    """The run folder's preparation, which multi-worker training requires to exist already.

    Each worker must train on the same splits with the same SentencePiece
    models; if each one prepared the corpus itself, they could race on a
    shared run folder or end up with different vocabularies. So the run
    folder is prepared once (``python -m translate prepare``) and then shared
    with, or copied to, every worker.

    Raises:
        ValueError: no usable ``TF_CONFIG`` (checked first), or no prepared run folder.
    """
    from translate.prepare import load_prepared

    read_tf_config()
    prepared = load_prepared(config)
    if prepared is None:
        raise ValueError(
            f"train.strategy=multi_worker needs a prepared run folder {config.run_dir} on every worker: "
            "run `python -m translate prepare` with the same config once, then share or copy the folder"
        )
    return prepared


def make_strategy(name: str):
    """The ``tf.distribute.Strategy`` named by ``train.strategy``.

    Must be called before TensorFlow runs anything else in the process: a
    multi-worker strategy configures the process's collective ops, which
    TensorFlow allows only at start-up, and logical CPU devices are fixed then
    too.

    Raises:
        ValueError: an unknown name, or ``multi_worker`` without a usable ``TF_CONFIG``.
    """
    if name == "multi_worker":
        read_tf_config()  # one clear line before TensorFlow starts a server
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    _work_around_keras_distribution_bugs()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # MirroredStrategy() alone takes the GPUs, or else CPU:0 only; naming the
        # devices makes it replicate over every logical CPU device as well
        # (tf.config.set_logical_device_configuration), e.g. to test on a laptop.
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        log.info("mirrored strategy over %d devices: %s", len(devices), ", ".join(devices))
        return strategy
    if name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        log.info(
            "multi-worker strategy: this is %s %s of %d replicas in sync",
            resolver.task_type,
            resolver.task_id,
            strategy.num_replicas_in_sync,
        )
        return strategy
    raise ValueError(f"unknown train.strategy {name!r} (default, mirrored or multi_worker)")


def _work_around_keras_distribution_bugs() -> None:
    """Patches two places where Keras 3.15's TensorFlow trainer breaks under tf.distribute.

    Both are module-level replacements in ``keras.src.backend.tensorflow.trainer``
    that leave the default strategy on Keras's own code path; applied once per
    process. Each names the issue it works around.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer.reduce_per_replica, "_translate_workaround", False):
        return
    keras_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    keras_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Before fit and each evaluate, under any strategy but the default one,
        # Keras pulls a batch from the distributed dataset and calls
        # strategy.reduce("MEAN", batch) on it, only to learn shapes and dtypes
        # for building the metrics, loss and optimizer:
        # * under MultiWorkerMirroredStrategy that reduce is a cross-worker
        #   collective on a nested PerReplica of int batches and fails
        #   ("Attempt to convert a value (PerReplica...) to a Tensor"),
        #   https://github.com/keras-team/keras/issues/20585;
        # * under MirroredStrategy too, fit's second validation pulls from the
        #   exhausted validation iterator and dies with StopIteration (the same
        #   pattern fixed for the JAX trainer in
        #   https://github.com/keras-team/keras/pull/23690).
        # Here nothing is pulled: once built, nothing is needed; before that,
        # the dataset's element_spec gives the shapes and dtypes. As a side
        # effect the training data gets one iterator, as with one device, so a
        # shuffled dataset is read in the same order.
        if iterator is None or self._distribute_strategy is None:
            return keras_build(self, iterator=iterator, data_batch=data_batch)
        if not _all_built(self):
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        # https://github.com/tensorflow/tensorflow/issues/72388 (also reported
        # in keras-team/keras#20585): after each step Keras averages the logs
        # (scalars: loss, metrics) over replicas with
        # strategy.reduce("MEAN", v, axis=0) in multi-worker mode, and a scalar
        # has no axis 0 ("Invalid reduction dimension 0 for input with 0
        # dimensions"). A scalar's mean over the replicas is axis=None.
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values
            )
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica._translate_workaround = True
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica


def _all_built(model) -> bool:
    """Whether ``Trainer._symbolic_build`` would find nothing that needs a data batch."""
    metrics, loss = model._compile_metrics, model._compile_loss
    return (
        all(layer.built for layer in model._flatten_layers())
        and (metrics is None or metrics.built)
        and (loss is None or loss.built)
    )
