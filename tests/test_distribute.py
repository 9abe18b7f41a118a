"""tf.distribute: mirrored over two logical CPUs matches one device; two workers train to the end.

TensorFlow fixes its devices and collective ops when it starts, so every
distributed run here is a subprocess with its own TensorFlow, bounded in time.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_OVERRIDES, tiny_config
from translate.distribute import is_chief, read_tf_config, worker_backup_dir, worker_name

SUBPROCESS_TIMEOUT = 150  # seconds; a hung collective must fail the test, not stall the suite


def _tf_config(ports: list[int], index: int, chief_port: int | None = None) -> str:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    if chief_port is not None:
        cluster["chief"] = [f"127.0.0.1:{chief_port}"]
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    # CPU only: on a GPU machine two workers would otherwise fight over one GPU.
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), **extra)
    return env


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_the_chief_is_worker_0_unless_the_cluster_names_one(tmp_path):
    two_workers = {"TF_CONFIG": _tf_config([1, 2], 0)}
    assert is_chief("multi_worker", two_workers) and worker_name("multi_worker", two_workers) == "chief"
    second = {"TF_CONFIG": _tf_config([1, 2], 1)}
    assert not is_chief("multi_worker", second) and worker_name("multi_worker", second) == "worker-1"
    with_chief = {"TF_CONFIG": _tf_config([1, 2], 0, chief_port=3)}
    assert not is_chief("multi_worker", with_chief) and worker_name("multi_worker", with_chief) == "worker-0"
    # Without multi_worker every process is the chief, whatever TF_CONFIG says.
    assert is_chief("mirrored", second)


def test_each_worker_gets_its_own_backup_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 0))
    assert worker_backup_dir(tmp_path, "backup", "multi_worker") == tmp_path / "backup"
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 1))
    assert worker_backup_dir(tmp_path, "backup", "multi_worker") == tmp_path / "backup-worker-1"
    assert worker_backup_dir(tmp_path, "backup", "default") == tmp_path / "backup"


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', '"cluster" with a "worker" list'),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}', "task worker:3 is not in"),
    ],
)
def test_a_missing_or_broken_tf_config_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys, value, message):
    from translate.cli import main

    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    overrides = [*TINY_OVERRIDES, f"run_dir={tmp_path / 'run'}"]
    assert main(["train", "--strategy", "multi_worker", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not (tmp_path / "run").exists()  # refused before anything was prepared or trained
    with pytest.raises(ValueError, match="TF_CONFIG"):
        read_tf_config({"TF_CONFIG": value} if value else {})


def test_multi_worker_needs_a_prepared_run_folder(tmp_path, monkeypatch):
    from translate.training import train

    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 1))
    with pytest.raises(ValueError, match="needs a prepared run folder .* `python -m translate prepare`"):
        train(tiny_config(tmp_path, "train.strategy=multi_worker"), verbose=0)


# Runs one config twice in one process that has two logical CPU devices:
# mirrored over both, then on one device; prints both histories as JSON.
MIRRORED_VS_ONE_DEVICE = """
import csv, json, logging, sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
logging.basicConfig(level=logging.INFO)
from translate.testing.tiny import tiny_config
from translate.training import train
histories = {}
for strategy in ("mirrored", "default"):
    config = tiny_config(Path(sys.argv[1]) / strategy, f"train.strategy={strategy}", *sys.argv[2:])
    run = train(config, verbose=0)
    rows = list(csv.DictReader(open(run.run_dir / "history.csv", encoding="utf-8")))
    histories[strategy] = {key: [float(row[key]) for row in rows] for key in ("loss", "val_loss")}
print("HISTORIES " + json.dumps(histories))
"""


def test_mirrored_over_two_cpus_follows_the_one_device_loss_curve(tmp_path):
    # Equal by construction: the same seed gives the same initial weights; dropout
    # is 0 (TINY_OVERRIDES); the shuffled dataset is read through one iterator in
    # both runs (see translate.distribute), so both see the same global batches of
    # train.batch_size=8 pairs, mirrored as 2 x 4. What may differ: each replica
    # averages over its own real tokens (translate.losses), and sums run in
    # another order.
    overrides = ["train.epochs=3", "train.steps_per_epoch=4", "train.dev_sentences=4", "train.tensorboard=false"]
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VS_ONE_DEVICE, str(tmp_path), *overrides],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Without this the test would pass trivially on one device.
    assert "mirrored strategy over 2 devices" in result.stderr
    histories = json.loads(result.stdout.split("HISTORIES ", 1)[1])
    mirrored, single = histories["mirrored"], histories["default"]
    print(f"\nmirrored (2 CPUs): {mirrored}\none device:        {single}")
    for key in ("loss", "val_loss"):
        assert len(mirrored[key]) == len(single[key]) == 3
        assert mirrored[key] == pytest.approx(single[key], rel=0.02), key
    assert single["loss"][-1] < single["loss"][0]  # it did learn: the curves are not flat


# A CLI worker whose backups are logged, to see which folder each worker uses.
LOGGED_BACKUP_CLI = """
import logging, sys
from translate import callbacks
from translate.cli import main
save = callbacks.ResumableBackup._save_model
def logged_save(self):
    logging.getLogger("test").info("BACKUP TO %s", self.backup_dir)
    return save(self)
callbacks.ResumableBackup._save_model = logged_save
sys.exit(main(sys.argv[1:]))
"""


def test_two_workers_train_to_the_end_and_only_the_chief_writes(tmp_path):
    from translate.prepare import prepare

    overrides = [
        *TINY_OVERRIDES,
        f"run_dir={tmp_path / 'run'}",
        f"export.models_dir={tmp_path / 'saved_models'}",
        "train.steps_per_epoch=4",
        "train.dev_sentences=4",
        "decode.beam_size=1",
    ]
    # Every worker must see the same splits and SentencePiece models: prepared once, shared.
    prepare(tiny_config(tmp_path, *overrides[len(TINY_OVERRIDES) :]), progress=False)
    ports = _free_ports(2)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LOGGED_BACKUP_CLI, "train", "--strategy", "multi_worker", *overrides],
            env=_env(TF_CONFIG=_tf_config(ports, index)),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=SUBPROCESS_TIMEOUT))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, f"{out}\n{err[-3000:]}"
    (chief_out, chief_err), (other_out, other_err) = outputs
    # What each worker printed, for `pytest -s` readers.
    print(f"--- worker 0 (chief) ---\n{chief_out}--- worker 1 ---\n{other_out}")
    run = tmp_path / "run"
    assert f"BACKUP TO {run / 'backup'}" in chief_err
    assert f"BACKUP TO {run / 'backup-worker-1'}" in other_err
    assert "exported" in chief_out and "test (" in chief_out
    assert "worker-1 done: the chief worker scores and exports" in other_out and "exported" not in other_out
    # One export, one history, one set of best weights: the chief's.
    assert [p.name for p in (tmp_path / "saved_models" / "translator").iterdir()] == ["1"]
    rows = list(csv.DictReader((run / "history.csv").open(encoding="utf-8")))
    assert len(rows) == 2 and all(float(row["loss"]) < 10 for row in rows)
    assert (run / "best.weights.h5").is_file()
    # Both workers held the same weights after each epoch: their dev BLEU lines agree.
    assert _dev_bleu_lines(chief_err) == _dev_bleu_lines(other_err) != []
    # The backups are gone once the run has finished, and so is the non-chief's temporary folder.
    assert not list(run.glob("backup*"))
    other_dir = Path(other_out.split("run folder: ", 1)[1].split("\n", 1)[0])
    assert other_dir != run and not other_dir.exists()


def _dev_bleu_lines(log: str) -> list[str]:
    return re.findall(r"epoch \d+: dev BLEU [\d.]+", log)
