"""Pictures: attention heatmaps (export and in-process graph alike), learning curves, TensorBoard images, CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from translate import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_heatmap_has_a_tick_per_piece_and_grows_with_the_sentence(tmp_path):
    source = ["▁In", "▁the", "▁begin", "ning", "</s>"]
    target = ["▁En", "▁el", "▁principio"]
    weights = np.random.default_rng(0).dirichlet(np.ones(len(source)), size=len(target))
    figure = plotting.attention_figure(source, target, weights, "title")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == source
    assert [t.get_text() for t in axes.get_yticklabels()] == target
    np.testing.assert_allclose(axes.images[0].get_array(), weights)
    small = png_size(plotting.save_png(figure, tmp_path / "deep" / "a.png"))
    long_source = [f"▁w{i}" for i in range(40)]
    big = plotting.attention_figure(long_source, target, np.full((3, 40), 1 / 40), None)
    assert png_size(plotting.save_png(big, tmp_path / "b.png"))[0] > small[0]
    rgb = plotting.figure_to_rgb(figure)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_heatmap_refuses_a_shape_that_does_not_match_and_draws_an_empty_translation():
    with pytest.raises(ValueError, match=r"does not match 2 target x 3 source pieces"):
        plotting.attention_figure(["a", "b", "c"], ["x", "y"], np.zeros((3, 2)))
    empty = plotting.attention_figure(["▁Hi", "</s>"], [], np.zeros((0, 2)))
    assert "empty translation" in " ".join(t.get_text() for t in empty.axes[0].texts)


def test_alignment_of_the_export_equals_the_in_process_graph(tiny_run, tiny_translator):
    sentence = "Good morning, how are you?"
    from_graph = plotting.alignment(tiny_run, sentence)
    from_export = plotting.alignment(tiny_translator, sentence)
    assert from_graph["source_pieces"] == from_export["source_pieces"]
    assert from_graph["source_pieces"][-1] == "</s>"
    assert from_graph["target_pieces"] == from_export["target_pieces"]
    np.testing.assert_allclose(from_graph["attention"], from_export["attention"], atol=1e-5)
    figure = plotting.plot_attention(tiny_run.graph, sentence)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == from_graph["source_pieces"]
    with pytest.raises(ValueError, match="cannot align with a str"):
        plotting.alignment("not a model", sentence)


def test_learning_curves_from_a_real_history(tiny_run, tmp_path):
    history = plotting.read_history(tiny_run.run_dir)
    assert history["epoch"] == [0.0, 1.0]
    figure = plotting.plot_learning_curves(tiny_run.run_dir)
    titles = [a.get_title() for a in figure.axes]
    assert titles == [
        "loss (per-token cross-entropy)",
        "dev BLEU (greedy)",
        "learning rate",
        "gradient norm before clipping",
    ]
    loss_axes = figure.axes[0]
    assert [line.get_label() for line in loss_axes.get_lines()] == ["train", "dev"]
    np.testing.assert_allclose(loss_axes.get_lines()[0].get_ydata(), history["loss"])
    np.testing.assert_allclose(loss_axes.get_lines()[0].get_xdata(), [1, 2])  # epochs counted from 1
    assert png_size(plotting.save_png(figure, tmp_path / "curves.png"))[0] > 500


def test_history_problems_are_named(tmp_path):
    with pytest.raises(ValueError, match="no training history: .*history.csv not found"):
        plotting.read_history(tmp_path)
    (tmp_path / "history.csv").write_text("epoch,loss\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no epochs yet"):
        plotting.read_history(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no 'epoch' column"):
        plotting.read_history(other)
    # An older log without grad_norm, a diverged (inf) epoch, rows out of order: drawn, not refused.
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n1,inf,2.0\n0,3.0,\n", encoding="utf-8")
    history = plotting.read_history(tmp_path)
    assert history["epoch"] == [0.0, 1.0] and history["loss"][0] == 3.0 and np.isnan(history["loss"][1])
    figure = plotting.learning_curves_figure(history)
    notes = [t.get_text() for a in figure.axes for t in a.texts]
    assert "not logged (grad_norm)" in notes and "not logged (dev_bleu)" in notes


def test_attention_images_reach_tensorboard_each_epoch(tiny_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from translate.callbacks import AttentionImages

    callback = AttentionImages(tiny_run.graph, ["Good morning.", "Thank you very much."], tmp_path / "attention")
    for epoch in range(2):
        callback.on_epoch_end(epoch, {"loss": 1.0})
    callback.on_epoch_end(2, {"loss": float("nan")})  # a diverged epoch draws nothing
    callback.on_train_end()
    events = EventAccumulator(str(tmp_path / "attention"), size_guidance={"tensors": 0})
    events.Reload()
    tags = sorted(events.Tags()["tensors"])
    assert tags == ["attention/dev_1", "attention/dev_2"]
    assert [event.step for event in events.Tensors("attention/dev_1")] == [0, 1]


def test_training_adds_the_attention_callback_when_tensorboard_is_on(tiny_run):
    from translate.training import make_callbacks

    train = tiny_run.config.train
    names = lambda config: [type(c).__name__ for c in make_callbacks(tiny_run, config, [("a b", "c d")])]  # noqa: E731
    on = dataclasses.replace(tiny_run.config, train=dataclasses.replace(train, tensorboard=True, attention_images=2))
    assert "AttentionImages" in names(on)
    off = dataclasses.replace(on, train=dataclasses.replace(on.train, attention_images=0))
    assert "AttentionImages" not in names(off)
    assert names(on)[-1] == "ResumableBackup"


def test_cli_plots_curves_and_attention(cli, tiny_run, tiny_export, tmp_path):
    curves = tmp_path / "c.png"
    result = cli("plot", "curves", "--run", str(tiny_run.run_dir), "--out", str(curves))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(curves) and png_size(curves)[0] > 500
    heatmap = tmp_path / "figures" / "a.png"
    result = cli("plot", "attention", "--model", str(tiny_export), "Good morning.", "--out", str(heatmap))
    assert result.returncode == 0, result.stderr[-2000:]
    assert png_size(heatmap)[0] > 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["curves", "--run", "{tmp}", "--out", "{tmp}/c.png"], "no training history: {tmp}/history.csv not found"),
        (["curves", "--run", "{tmp}/history.csv", "--out", "{tmp}/c.jpg"], "--out must name a .png file"),
        (["attention", "--model", "{tmp}/no_model", "hi", "--out", "{tmp}/a.png"], "model path does not exist"),
        (["attention", "--model", "{tmp}", "hi", "--out", "{tmp}/a.png"], "no SavedModel in {tmp}"),
        (["attention", "--run", "{tmp}", "hi", "--out", "{tmp}/a.png"], "not a run folder (no config.yaml)"),
        (["attention", "--run", "{tmp}", "  ", "--out", "{tmp}/a.png"], "the sentence to plot is empty"),
    ],
)
def test_plot_bad_input_exits_2_with_one_line(cli, tmp_path, args, message):
    result = cli("plot", *[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message.format(tmp=tmp_path) in lines[0]
