"""The fast tier's way through inference, export, ``translate.load`` and serving: an untrained tiny model.

The slow tier checks all of this on the trained ``tiny_export``; here the same path runs on a model that
was never trained (greedy, one loop, so that it traces in seconds): whatever it says, the in-process
graph, the reloaded SavedModel and the stand-in server over REST and gRPC must say the same.
"""

from __future__ import annotations

import pytest

from translate.testing.tiny import tiny_config

pytestmark = pytest.mark.timeout(300)

SENTENCES = ["Good morning.", "", "Where is the house?"]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """(run, export version folder, in-process translations of SENTENCES) of an untrained tiny model."""
    import keras

    from translate.export import export
    from translate.prepare import prepare_or_load
    from translate.training import build_run

    keras.utils.set_random_seed(0)  # the same weights every time
    config = tiny_config(tmp_path_factory.mktemp("untrained"), "decode.beam_size=1", "decode.shards=1")
    prepared = prepare_or_load(config, progress=False)
    run = build_run(config, config.run_dir, prepared.src_model, prepared.tgt_model)
    translations = run.graph(SENTENCES)
    return run, export(run.graph, config, prepared.src_model, prepared.tgt_model), translations


def test_the_graph_translates_a_list_into_a_list_of_strings(untrained):
    _, _, translations = untrained
    assert len(translations) == len(SENTENCES) and all(isinstance(t, str) for t in translations)


def test_the_loaded_export_translates_like_the_graph(untrained):
    import translate

    run, version_dir, translations = untrained
    assert version_dir.name == "1" and (version_dir / "assets" / "config.yaml").is_file()
    translator = translate.load(version_dir.parent)
    assert translator(SENTENCES) == translations
    assert translator(SENTENCES[0]) == translations[0]


def test_the_stand_in_serves_it_over_rest_and_grpc(untrained, tmp_path):
    from translate.serving_client import Client
    from translate.serving_config import write_serving_config
    from translate.testing.serving_standin import BatchingOptions, StandIn

    _, version_dir, translations = untrained
    files = write_serving_config(version_dir.parent.parent, tmp_path, name=version_dir.parent.name)
    server = StandIn(
        model_config_file=files["models.config"], batching=BatchingOptions.from_file(files["batching_parameters.txt"])
    ).start()
    try:
        for client in (
            Client(f"127.0.0.1:{server.rest_port}", version_dir.parent.name),
            Client(f"127.0.0.1:{server.grpc_port}", version_dir.parent.name, grpc=True),
        ):
            assert client.translate(SENTENCES) == translations
            client.close()
    finally:
        server.stop()
