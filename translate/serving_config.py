"""Operator files for TensorFlow Serving: ``models.config``, ``batching_parameters.txt``, ``monitoring.config``.

``python -m translate serving-config --models-dir saved_models`` writes the
three files that ``tensorflow_model_server`` takes as
``--model_config_file``, ``--batching_parameters_file`` and
``--monitoring_config_file`` (all protobuf text format). Kept free of
TensorFlow imports, like :mod:`translate.versions`, so the command answers at
once and checks its paths before anything heavy loads.

Why the batching values (:class:`Batching`) are what they are, for this
model on CPU:

* A request's cost is a ``tf.while_loop`` of decoder steps that runs until
  the longest sentence in the batch is finished, so a merged batch costs
  about as much as its longest member: every short sentence of a bigger
  batch waits for the longest one, while beam search's throughput grows with
  the batch (one-sentence against 32-sentence requests over REST in
  benchmarks/results/serving.json; docs/serving.md has the figures).
  ``max_batch_size`` 32 also bounds one request's rows:
  a request over it is refused (InvalidArgument, "Task size N is larger than
  maximum input batch size 32"), which keeps one client from monopolizing a
  batch thread; clients split larger jobs (``translate.serving_client.Client`` does).
* ``batch_timeout_micros`` 5000: a one-sentence beam-5 request took 57.9 ms
  at the median over REST (benchmarks/results/serving.json), so waiting at
  most 5 ms for company adds under a tenth to a lone request and lets
  concurrent requests share a step.
* ``num_batch_threads`` = the server's cores: each batch already runs its
  ops on TensorFlow's intra-op pool; more batch threads than cores only
  interleave them (TF Serving's own guidance for CPU).
* ``max_enqueued_batches`` 8 per thread-count: a 32-sentence request took
  0.38 s at the median over REST (benchmarks/results/serving.json), so a full
  queue means at most ~1.5 s of waiting before TF Serving answers
  UNAVAILABLE instead of letting latency grow without bound.
* Large-batch splitting stays at its default (off), so the maximum is a
  hard limit that clients see, as above. Only fields of
  ``BatchingParameters`` that every TF Serving 2.x knows are written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from translate import atomic
from translate.messages import short_repr
from translate.versions import check_model_name, versions

log = logging.getLogger(__name__)

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
# TF Serving's documented Prometheus path; the REST port serves it.
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
POLICIES = ("latest", "specific")


@dataclass(frozen=True)
class Batching:
    """TF Serving's ``BatchingParameters``; the module docstring says why each value."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 5000
    num_batch_threads: int = 0  # 0: the cores of the machine that writes the file
    max_enqueued_batches: int = 8

    def resolved(self) -> Batching:
        threads = self.num_batch_threads or os.cpu_count() or 1
        if self.max_batch_size < 1 or self.batch_timeout_micros < 0 or threads < 1 or self.max_enqueued_batches < 1:
            raise ValueError(f"batching values must be positive: {self}")
        return Batching(self.max_batch_size, self.batch_timeout_micros, threads, self.max_enqueued_batches)


def _text(value: str) -> str:
    """A protobuf text-format string literal (control characters as octal escapes)."""
    escaped = []
    for char in value:
        if char in '\\"':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\{ord(char):03o}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def discover_models(models_dir: str | Path) -> dict[str, list[int]]:
    """``{name: [versions]}`` of every model folder under ``models_dir`` that holds at least one version."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ValueError(f"models dir does not exist: {models_dir}")
    found = {p.name: versions(p) for p in sorted(models_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    found = {name: v for name, v in found.items() if v}
    if not found:
        raise ValueError(
            f"no exported versions under {models_dir} (expected {models_dir}/<name>/<version>/; "
            "run python -m translate export first)"
        )
    return found


def models_config(
    models: dict[str, list[int]],
    models_dir: str | Path,
    policy: str | None = None,
    specific: list[int] | None = None,
    num_latest: int = 1,
    stable: int | None = None,
    canary: int | None = None,
    base_path_prefix: str | None = None,
) -> str:
    """A ``ModelServerConfig`` in text format.

    Args:
        models: ``{name: versions present}`` (:func:`discover_models`).
        policy: ``latest`` (the newest ``num_latest`` versions) or ``specific``
            (the versions in ``specific``; default the labelled versions, else every version present).
            Default: ``specific`` when versions or labels are given, else ``latest``.
        stable, canary: version labels. TF Serving assigns a label only to a
            version it has loaded, so every labelled version must be served:
            with ``specific`` it is added, with ``latest`` it must be among
            the newest ``num_latest``.
        base_path_prefix: the models dir as the server sees it (e.g.
            ``/models`` inside the container); default the absolute local path.
    """
    labels = {k: v for k, v in (("stable", stable), ("canary", canary)) if v is not None}
    if policy is None:
        policy = "specific" if (labels or specific) else "latest"
    if policy not in POLICIES:
        raise ValueError(f"version policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if specific and policy != "specific":
        raise ValueError("--versions needs the specific version policy")
    if (labels or specific) and len(models) != 1:
        raise ValueError(
            f"versions and labels name one model, but {models_dir} holds {len(models)}: "
            f"{', '.join(models)} (choose one with --name)"
        )
    if num_latest < 1:
        raise ValueError(f"--latest must be at least 1, got {num_latest}")
    base = base_path_prefix.rstrip("/") if base_path_prefix else str(Path(models_dir).resolve())
    if not base.startswith("/"):
        raise ValueError(f"the base path prefix must be absolute (TF Serving resolves no relative paths): {base}")
    for name in models:
        # TF Serving's model name and a line of this file: a name with a line
        # break or a '/' could not be served under the name of its folder.
        try:
            check_model_name(name, "model folder")
        except ValueError as err:
            raise ValueError(f"{err} (in {models_dir}: rename it, or choose another model with --name)") from None
    lines = [
        "# Written by python -m translate serving-config; --model_config_file for tensorflow_model_server.",
        "model_config_list {",
    ]
    for name, present in models.items():
        if policy == "specific":
            # Without --versions: the labelled versions alone (a stable/canary pair), else all present.
            chosen = sorted(set(specific or labels.values() or present) | set(labels.values()))
            missing = [v for v in chosen if v not in present]
            if missing:
                raise ValueError(
                    f"model {name} has no version {', '.join(map(str, missing))} "
                    f"(present: {', '.join(map(str, present))})"
                )
            policy_text = "specific { " + " ".join(f"versions: {v}" for v in chosen) + " }"
        else:
            served = present[-num_latest:]
            for label, version in labels.items():
                if version not in served:
                    raise ValueError(
                        f"--{label} {version} is not among the versions the latest policy serves "
                        f"({', '.join(map(str, served))}); use --policy specific"
                    )
            policy_text = f"latest {{ num_versions: {num_latest} }}"
        lines += [
            "  config {",
            f"    name: {_text(name)}",
            f"    base_path: {_text(base + '/' + name)}",
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ {policy_text} }}",
        ]
        lines += [f"    version_labels {{ key: {_text(k)} value: {v} }}" for k, v in labels.items()]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def batching_parameters(batching: Batching = Batching()) -> str:
    """``BatchingParameters`` in text format (``--batching_parameters_file``)."""
    b = batching.resolved()
    return (
        "\n".join(
            [
                "# Written by python -m translate serving-config; --enable_batching --batching_parameters_file.",
                "# Why these values: translate/serving_config.py and docs/serving.md.",
                "# A request of more sentences than this is refused: clients split bigger jobs.",
                f"max_batch_size {{ value: {b.max_batch_size} }}",
                "# Waiting at most 5 ms for company adds a small share to a lone request's beam search.",
                f"batch_timeout_micros {{ value: {b.batch_timeout_micros} }}",
                "# One batch thread per core: each batch already uses TensorFlow's intra-op threads.",
                f"num_batch_threads {{ value: {b.num_batch_threads} }}",
                "# A bounded queue: overload answers UNAVAILABLE instead of unbounded latency.",
                f"max_enqueued_batches {{ value: {b.max_enqueued_batches} }}",
                "# Large-batch splitting stays at its default (off), so max_batch_size is a hard limit.",
            ]
        )
        + "\n"
    )


def monitoring_config(path: str = PROMETHEUS_PATH) -> str:
    """``MonitoringConfig`` in text format: Prometheus metrics on the REST port at ``path``."""
    if not path.startswith("/"):
        raise ValueError(f"the Prometheus path must start with '/': {path}")
    return (
        "# Written by python -m translate serving-config; --monitoring_config_file.\n"
        f"prometheus_config {{\n  enable: true\n  path: {_text(path)}\n}}\n"
    )


def write_serving_config(
    models_dir: str | Path,
    out_dir: str | Path | None = None,
    name: str | None = None,
    policy: str | None = None,
    specific: list[int] | None = None,
    num_latest: int = 1,
    stable: int | None = None,
    canary: int | None = None,
    base_path_prefix: str | None = None,
    batching: Batching = Batching(),
    prometheus_path: str = PROMETHEUS_PATH,
) -> dict[str, Path]:
    """Writes the three files into ``out_dir`` (default ``models_dir``) and returns their paths by file name.

    Every value is checked before the first file is written, so a refused
    command leaves the old files as they were.
    """
    if name is not None:
        check_model_name(name, "--name")
    models = discover_models(models_dir)
    if name is not None:
        if name not in models:
            raise ValueError(
                f"no exported versions of model {short_repr(name)} under {models_dir} "
                f"(models with versions: {', '.join(models)})"
            )
        models = {name: models[name]}
    texts = {
        MODELS_CONFIG: models_config(
            models, models_dir, policy, specific, num_latest, stable, canary, base_path_prefix
        ),
        BATCHING_CONFIG: batching_parameters(batching),
        MONITORING_CONFIG: monitoring_config(prometheus_path),
    }
    out = Path(out_dir) if out_dir is not None else Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for file_name, text in texts.items():
        # Atomic: TF Serving re-reads models.config when polling
        # (--model_config_file_poll_wait_seconds) and must never parse half a file.
        atomic.remove_stale_temporaries(out, file_name)
        atomic.write_text(out / file_name, text)
        written[file_name] = out / file_name
    log.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written


def read_max_batch_size(path: str | Path) -> int:
    """``max_batch_size`` from a ``batching_parameters.txt`` (what a server enforces)."""
    import re

    match = re.search(r"^\s*max_batch_size\s*\{\s*value:\s*(\d+)\s*\}", Path(path).read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError(f"no max_batch_size in {path}")
    return int(match.group(1))
