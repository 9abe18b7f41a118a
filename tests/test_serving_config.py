"""serving-config: the operator files parse as TF Serving's protos and say what the flags asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from conftest import REPO
from translate.serving_config import (
    BATCHING_CONFIG,
    MODELS_CONFIG,
    MONITORING_CONFIG,
    Batching,
    read_max_batch_size,
    write_serving_config,
)

pytestmark = pytest.mark.timeout(120)


def fake_models_dir(root: Path, **models: list[int]) -> Path:
    """A models dir with empty version folders (the generator only looks at the layout)."""
    for name, versions in models.items():
        for version in versions:
            (root / name / str(version)).mkdir(parents=True)
    return root


def parse_models_config(path: Path):
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(path.read_text(encoding="utf-8"), model_server_config_pb2.ModelServerConfig())


def _message_class(file_proto: descriptor_pb2.FileDescriptorProto, name: str):
    from google.protobuf import wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def batching_parameters_class():
    """TF Serving's BatchingParameters (session_bundle_config.proto), which its pip package does not ship."""
    F = descriptor_pb2.FieldDescriptorProto
    fields = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ]
    message = descriptor_pb2.DescriptorProto(
        name="BatchingParameters",
        field=[F(name=n, number=k, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=t) for n, k, t in fields],
    )
    message.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="batching.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        message_type=[message],
        syntax="proto3",
    )
    return _message_class(file_proto, "tensorflow.serving.BatchingParameters")


def monitoring_config_class():
    """TF Serving's MonitoringConfig (config/monitoring_config.proto)."""
    F = descriptor_pb2.FieldDescriptorProto
    prometheus = descriptor_pb2.DescriptorProto(
        name="PrometheusConfig",
        field=[
            F(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL),
            F(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING),
        ],
    )
    monitoring = descriptor_pb2.DescriptorProto(
        name="MonitoringConfig",
        field=[
            F(
                name="prometheus_config",
                number=1,
                label=F.LABEL_OPTIONAL,
                type=F.TYPE_MESSAGE,
                type_name=".tensorflow.serving.PrometheusConfig",
            )
        ],
    )
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="monitoring.proto", package="tensorflow.serving", message_type=[prometheus, monitoring], syntax="proto3"
    )
    return _message_class(file_proto, "tensorflow.serving.MonitoringConfig")


def test_latest_policy_with_absolute_base_paths_for_every_model(tmp_path):
    models = fake_models_dir(tmp_path / "saved_models", translator=[1, 2, 3], greedy=[1])
    (models / "empty").mkdir()  # a model folder without versions is left out
    written = write_serving_config(models)
    assert sorted(p.name for p in written.values()) == sorted([MODELS_CONFIG, BATCHING_CONFIG, MONITORING_CONFIG])
    config = parse_models_config(models / MODELS_CONFIG)
    by_name = {c.name: c for c in config.model_config_list.config}
    assert set(by_name) == {"translator", "greedy"}
    for name, c in by_name.items():
        assert c.base_path == str((models / name).resolve()) and Path(c.base_path).is_absolute()
        assert c.model_platform == "tensorflow"
        assert c.model_version_policy.latest.num_versions == 1
        assert not c.version_labels
    # Written atomically: nothing but the three files appears beside the models.
    assert sorted(p.name for p in models.iterdir()) == sorted(
        ["translator", "greedy", "empty", MODELS_CONFIG, BATCHING_CONFIG, MONITORING_CONFIG]
    )


def test_stable_and_canary_labels_serve_both_versions(tmp_path):
    models = fake_models_dir(tmp_path, translator=[1, 2, 3])
    write_serving_config(models, tmp_path / "out", stable=2, canary=3, base_path_prefix="/models")
    (c,) = parse_models_config(tmp_path / "out" / MODELS_CONFIG).model_config_list.config
    assert c.base_path == "/models/translator"
    assert list(c.model_version_policy.specific.versions) == [2, 3]
    assert dict(c.version_labels) == {"stable": 2, "canary": 3}
    write_serving_config(models, tmp_path / "out", policy="latest", num_latest=2, stable=2, canary=3)
    (c,) = parse_models_config(tmp_path / "out" / MODELS_CONFIG).model_config_list.config
    assert c.model_version_policy.latest.num_versions == 2 and dict(c.version_labels) == {"stable": 2, "canary": 3}
    write_serving_config(models, tmp_path / "out", specific=[1, 3])
    (c,) = parse_models_config(tmp_path / "out" / MODELS_CONFIG).model_config_list.config
    assert list(c.model_version_policy.specific.versions) == [1, 3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stable": 4}, "has no version 4"),
        ({"policy": "latest", "canary": 1}, "not among the versions the latest policy serves"),
        ({"specific": [1], "policy": "latest"}, "needs the specific version policy"),
        ({"name": "other"}, "no exported versions of model 'other'"),
        ({"base_path_prefix": "models"}, "must be absolute"),
        ({"batching": Batching(max_batch_size=0)}, "must be positive"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    models = fake_models_dir(tmp_path / "m", translator=[1, 2])
    with pytest.raises(ValueError, match=message):
        write_serving_config(models, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_batching_and_monitoring_files_parse_as_tf_serving_protos(tmp_path):
    models = fake_models_dir(tmp_path, translator=[1])
    write_serving_config(models, batching=Batching(max_batch_size=16, num_batch_threads=3))
    batching = text_format.Parse((models / BATCHING_CONFIG).read_text(encoding="utf-8"), batching_parameters_class()())
    assert (
        batching.max_batch_size.value,
        batching.batch_timeout_micros.value,
        batching.num_batch_threads.value,
        batching.max_enqueued_batches.value,
    ) == (16, 5000, 3, 8)
    assert read_max_batch_size(models / BATCHING_CONFIG) == 16
    monitoring = text_format.Parse(
        (models / MONITORING_CONFIG).read_text(encoding="utf-8"), monitoring_config_class()()
    )
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_cli_writes_the_files_and_refuses_a_dir_without_versions(tmp_path):
    models = fake_models_dir(tmp_path / "saved_models", translator=[1, 2])
    result = run_cli("serving-config", "--models-dir", str(models), "--stable", "1", "--canary", "2")
    assert result.returncode == 0, result.stderr
    assert [Path(line).name for line in result.stdout.split()] == [MODELS_CONFIG, BATCHING_CONFIG, MONITORING_CONFIG]
    assert 'version_labels { key: "canary" value: 2 }' in (models / MODELS_CONFIG).read_text(encoding="utf-8")
    (tmp_path / "nothing" / "translator").mkdir(parents=True)
    for bad in (tmp_path / "nothing", tmp_path / "missing"):
        result = run_cli("serving-config", "--models-dir", str(bad))
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and str(bad) in line


def test_a_model_folder_name_with_a_line_break_is_refused_in_one_line(tmp_path):
    models = fake_models_dir(tmp_path / "saved_models", **{"two\nlines": [1], "translator": [1]})
    with pytest.raises(ValueError) as refused:
        write_serving_config(models, tmp_path / "out")
    assert str(refused.value) == (
        "model folder 'two\\nlines' must be a single folder name of at most 128 letters, digits, '.', '_' and '-', "
        f"not starting with '.' (in {models}: rename it, or choose another model with --name)"
    )
    assert not (tmp_path / "out").exists()
    # The other model can still be served by name, and a name that is no folder name is refused as such.
    write_serving_config(models, tmp_path / "out", name="translator")
    assert [c.name for c in parse_models_config(tmp_path / "out" / MODELS_CONFIG).model_config_list.config] == [
        "translator"
    ]
    with pytest.raises(ValueError, match=r"^--name '\.\./x' must be a single folder name"):
        write_serving_config(models, tmp_path / "out", name="../x")
    result = run_cli("serving-config", "--models-dir", str(models))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_base_path_with_control_characters_stays_one_valid_string(tmp_path):
    models = fake_models_dir(tmp_path / "m", translator=[1])
    write_serving_config(models, base_path_prefix='/models\n"x"\t\\y')
    (config,) = parse_models_config(models / MODELS_CONFIG).model_config_list.config
    assert config.base_path == '/models\n"x"\t\\y/translator'


def test_serving_files_are_written_atomically_and_stale_temporaries_cleared(tmp_path, monkeypatch):
    models = fake_models_dir(tmp_path / "m", translator=[1])
    write_serving_config(models)
    before = (models / MODELS_CONFIG).read_text(encoding="utf-8")
    stale = models / f".tmp-{MODELS_CONFIG}-0a1b2c3d"  # left by a writer killed before its rename
    stale.write_text("half", encoding="utf-8")
    write_serving_config(models, num_latest=1)
    assert not stale.exists()

    import translate.atomic

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(translate.atomic, "_fsync_file", fail)
    with pytest.raises(OSError, match="disk full"):
        write_serving_config(models, stable=1)
    assert (models / MODELS_CONFIG).read_text(encoding="utf-8") == before
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [BATCHING_CONFIG, MODELS_CONFIG, MONITORING_CONFIG, "translator"]
    )
