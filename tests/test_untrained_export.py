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


def test_an_untrained_model_says_the_same_in_process_reloaded_and_served(tmp_path):
    """One test, not three over a module fixture: the export is the cost here, and the suite's two workers
    would each build a fixture whose tests they share."""
    import keras

    import translate
    from translate.export import export
    from translate.prepare import prepare_or_load
    from translate.serving_client import Client
    from translate.serving_config import write_serving_config
    from translate.testing.serving_standin import BatchingOptions, StandIn
    from translate.training import build_run

    keras.utils.set_random_seed(0)  # the same weights every time
    config = tiny_config(tmp_path / "untrained", "decode.beam_size=1", "decode.shards=1")
    prepared = prepare_or_load(config, progress=False)
    run = build_run(config, config.run_dir, prepared.src_model, prepared.tgt_model)

    # The in-process graph translates a list into a list of strings.
    translations = run.graph(SENTENCES)
    assert len(translations) == len(SENTENCES) and all(isinstance(t, str) for t in translations)

    # The export, loaded back, translates as the graph does.
    version_dir = export(run.graph, config, prepared.src_model, prepared.tgt_model)
    assert version_dir.name == "1" and (version_dir / "assets" / "config.yaml").is_file()
    translator = translate.load(version_dir.parent)
    assert translator(SENTENCES) == translations
    assert translator(SENTENCES[0]) == translations[0]

    # The stand-in server serves it over REST and gRPC with the same answers.
    files = write_serving_config(version_dir.parent.parent, tmp_path / "serving", name=version_dir.parent.name)
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
