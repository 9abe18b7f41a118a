"""``python -m translate <command>``: argument parsing, then calls into the library.

Only this module prints. Bad input exits with status 2 and one line on stderr
that names the problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from translate.lines import DEFAULT_BATCH_SIZE, batches, decode_line, read_lines
from translate.versions import check_model_name, resolve_version, saved_model_version

SAMPLE_SENTENCES = (
    "In the beginning was the Word.",
    "Love your neighbor as yourself.",
    "Where are you going?",
)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="a preset from configs/ (e.g. quick, base)")
    parser.add_argument("--config", help="a YAML config file (applied after the preset)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides applied last, e.g. train.epochs=3 model.cell=lstm",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m translate", description="Recurrent neural machine translation with attention."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="clean and split a corpus, train SentencePiece, write stats")
    _add_config_arguments(prepare)
    prepare.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        help="a malformed corpus line: stop (raise) or skip and count it (data.on_error)",
    )

    train = commands.add_parser("train", help="train, evaluate on the test split, export, translate samples")
    _add_config_arguments(train)
    train.add_argument("--on-error", choices=("raise", "skip"), help="as for prepare")
    train.add_argument("--no-export", action="store_true", help="skip the export after training")
    train.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start from RUN's best weights and encode the corpus with its SentencePiece models "
        "(train.init_from); the model settings must be RUN's, the learning rate and budget are this config's",
    )
    train.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        help="one device; all local GPUs (or CPUs); or the machines in TF_CONFIG (train.strategy). "
        "train.batch_size is the global batch, split over all replicas",
    )

    export = commands.add_parser("export", help="export a trained run folder as a new SavedModel version")
    exported = export.add_mutually_exclusive_group(required=True)
    exported.add_argument(
        "--model",
        "--run",
        dest="run",
        metavar="RUN",
        help="run folder written by train (holds config.yaml); --run is the same",
    )
    exported.add_argument(
        "--ensemble",
        nargs="+",
        metavar="RUN",
        help="two or more run folders with the same SentencePiece models, exported as one model whose search "
        "averages their log-probabilities at every step (decoding settings from the first)",
    )
    export.add_argument(
        "--weights", help="a checkpoint (.weights.h5) of that run to export (default: the run's best.weights.h5)"
    )
    export.add_argument("--models-dir", help="where model folders live (default: the run's export.models_dir)")
    export.add_argument("--name", help="model name (default: the run's export.name)")
    export.add_argument(
        "--beam", type=int, help="beam width K, fixed in the export (default: the run's decode.beam_size)"
    )
    export.add_argument("--alpha", type=float, help="GNMT length penalty, fixed in the export (default: decode.alpha)")

    average = commands.add_parser(
        "average",
        help="average a run's last epoch checkpoints into one .weights.h5 that export --weights takes",
        description="Writes the element-wise mean of several checkpoints of one model (translate/averaging.py). "
        "Never replaces a file.",
    )
    average.add_argument("--run", metavar="RUN", help="the run folder (its checkpoints/ with --last; checked against)")
    chosen = average.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--last", type=int, metavar="N", help="the run's last N epoch checkpoints (train.keep_checkpoints=N or more)"
    )
    chosen.add_argument("--checkpoints", nargs="+", metavar="CKPT", help="these .weights.h5 files instead")
    average.add_argument(
        "--out",
        metavar="FILE.weights.h5",
        help="where to write it, a new file (default: RUN/checkpoints/average-last-N.weights.h5)",
    )

    translate = commands.add_parser("translate", help="translate sentences with an exported model or a model server")
    source = translate.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model folder (newest version) or a version folder")
    source.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="a TensorFlow Serving server: REST (e.g. localhost:8501) or, with --grpc, gRPC (:8500)",
    )
    translate.add_argument("--model-name", default="translator", help="the model's name on the server")
    translate.add_argument("--grpc", action="store_true", help="talk gRPC to --server instead of REST")
    translate.add_argument("--timeout", type=float, default=30.0, help="seconds per request to --server")
    translate.add_argument(
        "sentences", nargs="*", help="sentences; read from --input or stdin, one per line, when none"
    )
    translate.add_argument(
        "--input", metavar="FILE", help="read the sentences from FILE, one per line ('-': standard input, the default)"
    )
    translate.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="translate N lines at a time and write each batch's output as soon as it is done "
        f"(default: {DEFAULT_BATCH_SIZE}; 1 when standard input is a terminal)",
    )
    translate.add_argument("--scores", action="store_true", help="print the score before each line")
    translate.add_argument(
        "--sample",
        action="store_true",
        help="draw each translation from the model's distribution (the sample signature) instead of searching",
    )
    translate.add_argument(
        "--temperature", type=float, help="with --sample: divide the logits by T (default 1; below 1: safer)"
    )
    translate.add_argument(
        "--top-k", type=int, metavar="K", help="with --sample: draw from the K most likely pieces (default 0: all)"
    )
    translate.add_argument(
        "--nbest",
        type=int,
        help="print the N best translations of each sentence: SENTENCE_INDEX<TAB>RANK<TAB>SCORE<TAB>TRANSLATION",
    )

    back = commands.add_parser(
        "backtranslate",
        help="synthetic pairs from monolingual target-language text, translated by a reverse model",
        description="Translates each line of --mono with --model, an export trained in the reverse direction "
        "(target -> source), and writes SYNTHETIC_SOURCE<TAB>LINE pairs to --out, a new TSV file "
        "(a tsv: corpus). Blank and invalid lines are skipped. Never replaces a file.",
    )
    back.add_argument("--model", required=True, help="the reverse model: a model folder (newest version) or version")
    back.add_argument("--mono", required=True, metavar="FILE", help="target-language sentences, one per line")
    back.add_argument("--out", required=True, metavar="FILE.tsv", help="the pairs to write (a new file)")
    back.add_argument("--sample", action="store_true", help="sample each translation instead of beam search")
    back.add_argument("--temperature", type=float, help="with --sample: divide the logits by T (default 1)")
    back.add_argument(
        "--top-k", type=int, metavar="K", help="with --sample: draw from the K most likely pieces (default 0: all)"
    )
    back.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="sentences per call (default: %(default)s)",
    )

    serving = commands.add_parser(
        "serving-config",
        help="write models.config, batching_parameters.txt and monitoring.config for TensorFlow Serving",
    )
    serving.add_argument(
        "--models-dir", default="saved_models", help="the folder of model folders (default: %(default)s)"
    )
    serving.add_argument("--out", help="where to write the files (default: the models dir)")
    serving.add_argument("--name", help="only this model (default: every model folder with versions)")
    serving.add_argument(
        "--policy",
        choices=("latest", "specific"),
        help="version policy (default: specific with --versions/--stable/--canary, else latest)",
    )
    serving.add_argument("--latest", type=int, default=1, metavar="N", help="with latest: serve the N newest versions")
    serving.add_argument("--versions", type=int, nargs="+", metavar="V", help="with specific: the versions to serve")
    serving.add_argument("--stable", type=int, metavar="V", help="label version V 'stable'")
    serving.add_argument("--canary", type=int, metavar="V", help="label version V 'canary'")
    serving.add_argument(
        "--base-path",
        metavar="DIR",
        help="the models dir as the server sees it, e.g. /models in Docker (default: its absolute path)",
    )
    serving.add_argument("--max-batch-size", type=int, default=32, help="batching: most sentences per request")
    serving.add_argument("--batch-timeout-micros", type=int, default=5000, help="batching: longest wait for a batch")
    serving.add_argument(
        "--batch-threads", type=int, default=0, help="batching: threads (default: this machine's cores)"
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU, chrF and TER (sacrebleu) of a model or a file of translations",
        description="Scores with sacrebleu's BLEU, chrF and TER and prints their signatures. Several --ref files "
        "score against several references; --compare adds systems tested against the first with "
        "paired bootstrap resampling.",
    )
    system = evaluate.add_mutually_exclusive_group(required=True)
    system.add_argument("--model", help="model folder (newest version) or version folder: translates the sources")
    system.add_argument("--hyp", metavar="FILE", help="translations already made, one per line (instead of --model)")
    evaluate.add_argument("--src", help="source sentences, one per line")
    evaluate.add_argument(
        "--ref",
        action="append",
        metavar="FILE",
        help="reference translations, one per line; repeat for several references per sentence",
    )
    evaluate.add_argument(
        "--builtin",
        metavar="bible:SRC-TGT",
        help="sources and references from the built-in Bible corpus (instead of --src/--ref): "
        "every public-domain version of the target language is a reference "
        "(English: World English Bible, King James, Bible in Basic English)",
    )
    evaluate.add_argument(
        "--split",
        choices=("train", "dev", "test"),
        help="with --builtin: which split (default: test = Romans; dev = James)",
    )
    evaluate.add_argument(
        "--compare",
        action="append",
        metavar="MODEL_OR_FILE",
        help="another system, a model folder or a file of translations; repeatable. Each is "
        "tested against the first system with paired bootstrap resampling",
    )
    evaluate.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap samples of the paired test (default: %(default)s)",
    )
    evaluate.add_argument(
        "--sentences",
        metavar="FILE.tsv",
        help="write per-sentence BLEU and chrF with source, hypothesis and references, worst first",
    )
    evaluate.add_argument("--output", help="write the first system's translations here")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    evaluate.add_argument("--batch-size", type=int, default=64)

    plot = commands.add_parser("plot", help="PNG pictures: attention heatmaps, learning curves")
    kinds = plot.add_subparsers(dest="kind", required=True, metavar="KIND")
    attention = kinds.add_parser("attention", help="attention heatmap of one sentence: source x target pieces")
    where = attention.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="model folder or version folder (its align signature)")
    where.add_argument("--run", help="run folder: its best weights, in process")
    attention.add_argument("sentence", help="the source sentence")
    attention.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    curves = kinds.add_parser("curves", help="learning curves: loss, dev BLEU, learning rate, gradient norm")
    curves.add_argument("--run", required=True, help="run folder (holds history.csv), or a history.csv")
    curves.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    return parser


def _print_scores(title: str, scores) -> None:
    print(title)
    for line in scores.lines():
        print("  " + line)


def _config(args):
    from translate.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "on_error", None):
        overrides.append(f"data.on_error={args.on_error}")
    if getattr(args, "strategy", None):
        overrides.append(f"train.strategy={args.strategy}")
    config = load_config(args.preset, args.config, overrides)
    if getattr(args, "init_from", None) is not None:
        # Set as it is, not parsed as YAML: any folder name is a string here.
        config.train.init_from = args.init_from
        config.validate()
    from translate.reuse import check_init_from, init_sentencepiece, reused_data
    from translate.run_folder import check_prepare, check_train

    config = reused_data(config)  # refuses a missing or unprepared data.reuse_from
    # A run folder that may not be written is refused now, before TensorFlow loads (the library checks again).
    (check_prepare if args.command == "prepare" else check_train)(config)
    (init_sentencepiece if args.command == "prepare" else check_init_from)(config)
    if args.command == "train" and config.train.strategy == "multi_worker":
        from translate.distribute import read_tf_config

        read_tf_config()  # a missing or broken TF_CONFIG fails now, before TensorFlow loads
    unprepared = args.command == "prepare" or not (Path(config.run_dir) / "stats.json").is_file()
    if unprepared and not config.data.reuse_from:
        from translate.corpora import read_pairs
        from translate.reuse import synthetic_spec

        # Checks each spec and its files now, before TensorFlow loads; reads nothing yet.
        synthetic = config.data.synthetic and synthetic_spec(config.data.synthetic)
        for spec in (config.data.corpus, config.data.dev_corpus, config.data.test_corpus, synthetic):
            if spec:
                read_pairs(spec, on_error=config.data.on_error)
    return config


def cmd_prepare(args) -> int:
    config = _config(args)
    from translate.prepare import prepare

    prepared = prepare(config)
    print(json.dumps({k: v for k, v in prepared.stats.items() if k != "data_config"}, indent=2, ensure_ascii=False))
    print(f"prepared {prepared.run_dir} (stats in {prepared.run_dir / 'stats.json'})")
    return 0


def cmd_train(args) -> int:
    config = _config(args)
    if config.train.members > 1:
        return _train_members(args, config)
    from translate.training import train

    started = time.monotonic()
    run = train(config)
    print(f"trained in {(time.monotonic() - started) / 60:.1f} minutes; run folder: {run.run_dir}")
    from translate.distribute import is_chief, worker_name

    if not is_chief(config.train.strategy):
        # Same weights as the chief's; scoring and exporting them again would only race on its files.
        print(f"{worker_name(config.train.strategy)} done: the chief worker scores and exports the model")
        return 0
    test_pairs = run.prepared.read("test")
    return _score_and_export(args, config, run.graph, run.src_model, run.tgt_model, test_pairs, run.run_dir)


def _train_members(args, config) -> int:
    """``train.members`` > 1: the members side by side, one process per core, then their ensemble."""
    from translate.members import train_members

    started = time.monotonic()
    members = train_members(config)
    minutes = (time.monotonic() - started) / 60
    print(f"trained {len(members)} members side by side in {minutes:.1f} minutes; run folder: {config.run_dir}")
    from translate.config import load_config
    from translate.ensemble import load_ensemble
    from translate.prepare import read_split

    # As export --ensemble makes it (the first member's config, every member's recorded), with this command's
    # decoding and export settings: a member kept from an earlier call has that call's in its config.yaml.
    graph, first, src_model, tgt_model = load_ensemble(members, decode=config.decode)
    first = dataclasses.replace(first, export=config.export)
    configs = [(str(d), load_config(config_file=d / "config.yaml")) for d in members]
    test_pairs = read_split(Path(config.run_dir), "test")
    return _score_and_export(args, first, graph, src_model, tgt_model, test_pairs, Path(config.run_dir), configs)


def _score_and_export(args, config, graph, src_model, tgt_model, test_pairs, run_dir, members=()) -> int:
    """What train does after training: test scores (into the run folder), the export, sample translations."""
    from translate.export import export
    from translate.training import evaluate_graph
    from translate.translator import load

    if not test_pairs:
        print("no test pairs: skipping the test scores")
    else:
        _, scores = evaluate_graph(graph, test_pairs)
        decoding = config.decode
        _print_scores(f"test ({len(test_pairs)} sentences, beam {decoding.beam_size}, alpha {decoding.alpha}):", scores)
        from translate.atomic import write_text
        from translate.run_folder import TEST_SCORES

        write_text(run_dir / TEST_SCORES, json.dumps(scores.to_dict(), indent=2))
    if args.no_export:
        return 0
    path = export(graph, config, src_model, tgt_model, members=members)
    print(f"exported {path}")
    translator = load(path)
    for source, target in zip(SAMPLE_SENTENCES, translator(list(SAMPLE_SENTENCES))):
        print(f"  {source}\n  -> {target}")
    return 0


def _export_ensemble(args, overrides) -> int:
    if args.weights:
        raise ValueError("--weights is for one run (--model); an ensemble exports each run's best weights")
    from translate.ensemble import check_members

    check_members(args.ensemble)  # missing runs, different vocabularies: one line, before TensorFlow loads
    from translate.config import load_config

    load_config(config_file=Path(args.ensemble[0]) / "config.yaml", overrides=overrides)  # refuses bad values now
    from translate.ensemble import load_ensemble
    from translate.export import export

    graph, config, src_model, tgt_model = load_ensemble(args.ensemble, overrides)
    members = [(str(d), load_config(config_file=Path(d) / "config.yaml")) for d in args.ensemble]
    print(export(graph, config, src_model, tgt_model, args.models_dir, args.name, members=members))
    return 0


def cmd_export(args) -> int:
    overrides = [f"decode.beam_size={args.beam}"] if args.beam is not None else []
    overrides += [f"decode.alpha={args.alpha}"] if args.alpha is not None else []
    if args.name is not None:
        check_model_name(args.name, "--name")
    if args.ensemble:
        return _export_ensemble(args, overrides)
    if not (Path(args.run) / "config.yaml").is_file():
        raise ValueError(f"not a run folder (no config.yaml): {args.run}")
    from translate.config import load_config

    config = load_config(config_file=Path(args.run) / "config.yaml", overrides=overrides)  # refuses bad values now
    if config.train.members > 1:
        # The folder of an ensemble trained side by side (train.members): its members, as --ensemble takes them.
        from translate.members import member_dirs

        args.ensemble = [str(d) for d in member_dirs(args.run, config)]
        if args.weights:
            raise ValueError(
                f"{args.run} holds an ensemble of {config.train.members} members (train.members): --weights is "
                f"for one run's checkpoint; export one member with --model {args.ensemble[0]} --weights"
            )
        return _export_ensemble(args, overrides)
    if args.weights:
        from translate.averaging import check_fits_run

        check_fits_run(args.weights, args.run)  # a missing file or another model's weights: one line
    from translate.export import export
    from translate.training import load_run

    run = load_run(args.run, overrides)
    if args.weights:
        # The same layers as the best checkpoint: any epoch's weights of this run fit them.
        run.models.training.load_weights(args.weights)
    path = export(run.graph, run.config, run.src_model, run.tgt_model, args.models_dir, args.name)
    print(path)
    return 0


def cmd_average(args) -> int:
    from translate import averaging

    if args.last is not None and not args.run:
        raise ValueError("--last needs --run, the run folder whose checkpoints to average")
    if args.run and not (Path(args.run) / "config.yaml").is_file():
        raise ValueError(f"not a run folder (no config.yaml): {args.run}")
    if args.out is None and not args.run:
        raise ValueError("give --out, or --run to write into the run's checkpoints/ folder")
    if args.last is not None:
        checkpoints = averaging.last_checkpoints(args.run, args.last)
    else:
        checkpoints = [Path(c) for c in args.checkpoints]
    out = averaging.check_output(args.out or averaging.default_output(args.run, checkpoints, args.last))
    averaging.check_checkpoints(checkpoints)
    if args.run:
        averaging.check_fits_run(checkpoints[0], args.run)
    print(averaging.average_checkpoints(checkpoints, out))
    return 0


def _input_batches(args):
    """``(batches of input lines, how a warning names a line)`` for ``translate``: the arguments,
    --input FILE or standard input, read lazily.

    Checked before TensorFlow loads: the batch size, and that --input can be opened.
    """
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.sentences and args.input:
        raise ValueError("give sentences as arguments or --input FILE, not both")
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    if args.sentences:
        # Arguments that are not valid UTF-8 arrive with surrogate escapes: decode their bytes as lines.
        lines = (decode_line(os.fsencode(s), i) for i, s in enumerate(args.sentences, start=1))
        return batches(lines, batch_size), "argument {}"
    if args.input and args.input != "-":
        try:
            stream = open(args.input, "rb")  # noqa: SIM115 -- read lazily, closed at exit
        except FileNotFoundError:
            raise ValueError(f"--input file not found: {args.input}") from None
        except IsADirectoryError:
            raise ValueError(f"--input {args.input} is a folder, not a text file") from None
        except OSError as err:
            raise ValueError(f"cannot read --input {args.input}: {err.strerror or err}") from None
        return batches(read_lines(stream, args.input), batch_size), f"{args.input} line {{}}"
    if args.batch_size is None and sys.stdin.isatty():
        batch_size = 1  # someone typing: answer each line at once
    return batches(read_lines(sys.stdin.buffer, "standard input"), batch_size), "line {}"


def _translate_stream(input_batches, where: str, translate, nbest, with_scores: bool) -> None:
    """Translates batch after batch, writing and flushing each batch's output before reading on.

    ``translate(texts)`` returns (translations, scores); ``nbest(texts)``, when
    given, the n-best rows instead. A line that is not valid UTF-8 is named on
    stderr and translated with replacement characters, so the output stays
    line-aligned with the input.
    """
    for batch in input_batches:
        for line in batch:
            if line.problem:
                print(
                    f"warning: {where.format(line.number)}: {line.problem}: translated with replacement characters",
                    file=sys.stderr,
                    flush=True,
                )
        texts = [line.text for line in batch]
        if nbest is not None:
            for line, row in zip(batch, nbest(texts)):
                for rank, (translation, score) in enumerate(row, start=1):
                    print(f"{line.number - 1}\t{rank}\t{score:.4f}\t{translation}")
        else:
            translations, scores = translate(texts)
            for translation, log_prob in zip(translations, scores):
                print(f"{log_prob:.4f}\t{translation}" if with_scores else translation)
        sys.stdout.flush()


def _translate_on_server(args) -> int:
    from translate.serving_client import Client, ServingError

    input_batches, where = _input_batches(args)
    try:
        with Client(
            args.server,
            args.model_name,
            grpc=args.grpc,
            timeout=args.timeout,
            max_batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
        ) as client:
            nbest = (lambda texts: client.nbest(texts, args.nbest)) if args.nbest else None
            _translate_stream(input_batches, where, client.translate_with_scores, nbest, args.scores)
    except (ServingError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _check_sampling(args) -> None:
    """``--sample`` with its ``--temperature`` and ``--top-k`` (translate, backtranslate): one line when wrong."""
    if not args.sample and (args.temperature is not None or args.top_k is not None):
        raise ValueError("--temperature and --top-k need --sample")
    # Below 1e-3 the scaled logits overflow float32 (a sample is then the most likely piece anyway);
    # --top-k goes into an int32 input.
    if args.temperature is not None and not 1e-3 <= args.temperature <= 1e3:
        raise ValueError(
            "--temperature must be between 0.001 and 1000 (for the most likely translation leave out --sample), "
            f"got {args.temperature}"
        )
    if args.top_k is not None and not 0 <= args.top_k <= 2**31 - 1:
        raise ValueError(f"--top-k must be between 0 (every piece) and 2147483647, got {args.top_k}")


def cmd_translate(args) -> int:
    _check_sampling(args)
    if args.sample and (args.nbest or args.server):
        raise ValueError("--sample draws one translation per sentence from --model: not with --nbest or --server")
    if args.server:
        return _translate_on_server(args)
    resolve_version(args.model)  # a bad path fails here, before TensorFlow loads
    input_batches, where = _input_batches(args)
    from translate.translator import load

    translator = load(args.model)
    if args.sample:
        temperature, top_k = args.temperature or 1.0, args.top_k or 0
        sample = lambda texts: translator.sample_with_scores(texts, temperature, top_k)  # noqa: E731
        _translate_stream(input_batches, where, sample, None, args.scores)
        return 0
    nbest = None
    if args.nbest:
        if not 1 <= args.nbest <= translator.beam_size:
            raise ValueError(f"--nbest must be between 1 and the export's beam size {translator.beam_size}")
        nbest = lambda texts: translator.nbest_with_scores(texts, args.nbest)  # noqa: E731
    _translate_stream(input_batches, where, translator.translate_with_scores, nbest, args.scores)
    return 0


def cmd_backtranslate(args) -> int:
    _check_sampling(args)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    from translate.backtranslation import backtranslate, check_output

    check_output(args.out)
    resolve_version(args.model)  # a bad path fails here, before TensorFlow loads
    try:
        stream = open(args.mono, "rb")  # noqa: SIM115 -- read lazily, closed below
    except FileNotFoundError:
        raise ValueError(f"--mono file not found: {args.mono}") from None
    except IsADirectoryError:
        raise ValueError(f"--mono {args.mono} is a folder, not a text file") from None
    except OSError as err:
        raise ValueError(f"cannot read --mono {args.mono}: {err.strerror or err}") from None
    with stream:
        translator = _load_translator(Path(args.model))
        if args.sample:
            temperature, top_k = args.temperature or 1.0, args.top_k or 0
            translate = lambda texts: translator.sample_with_scores(texts, temperature, top_k)[0]  # noqa: E731
        else:
            translate = lambda texts: translator.translate_with_scores(texts)[0]  # noqa: E731
        stats = backtranslate(translate, read_lines(stream, args.mono), args.out, args.batch_size, args.mono)
    skipped = stats.empty + stats.invalid_utf8 + stats.empty_translation
    print(
        f"{stats.pairs} pairs from {stats.lines} lines ({stats.empty} blank, {stats.invalid_utf8} not UTF-8, "
        f"{stats.empty_translation} with an empty translation: {skipped} skipped)",
        file=sys.stderr,
    )
    print(args.out)
    return 0


def _load_translator(version: Path):
    from translate.translator import load

    try:
        return load(version)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 -- TensorFlow raises many types for a broken SavedModel
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot load the SavedModel in {version}: {first_line[:300]}") from None


def cmd_evaluate(args) -> int:
    from translate.evaluation import evaluate_systems

    evaluation = evaluate_systems(
        model=args.model,
        hyp=args.hyp,
        others=args.compare or (),
        src=args.src,
        refs=args.ref or (),
        builtin=args.builtin,
        split=args.split,
        bootstrap=args.bootstrap,
        sentences=args.sentences,
        output=args.output,
        batch_size=args.batch_size,
        load=_load_translator,
        warn=lambda message: print(f"warning: {message}", file=sys.stderr),
    )
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(evaluation.lines()))
    return 0


def _png_path(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    if path.is_dir():
        raise ValueError(f"--out {out} is a folder")
    return path


def cmd_plot(args) -> int:
    out = _png_path(args.out)
    if args.kind == "curves":
        from translate.plotting import plot_learning_curves, save_png

        print(save_png(plot_learning_curves(args.run), out))
        return 0
    if not args.sentence.strip():
        raise ValueError("the sentence to plot is empty")
    version = saved_model_version(args.model) if args.model else None
    if args.run and not (Path(args.run) / "config.yaml").is_file():
        raise ValueError(f"not a run folder (no config.yaml): {args.run}")
    from translate.plotting import plot_attention, save_png

    if version is not None:
        model = _load_translator(version)
    else:
        from translate.training import load_run

        model = load_run(args.run)
    print(save_png(plot_attention(model, args.sentence), out))
    return 0


def cmd_serving_config(args) -> int:
    from translate.serving_config import Batching, write_serving_config

    written = write_serving_config(
        args.models_dir,
        args.out,
        name=args.name,
        policy=args.policy,
        specific=args.versions,
        num_latest=args.latest,
        stable=args.stable,
        canary=args.canary,
        base_path_prefix=args.base_path,
        batching=Batching(
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.batch_threads,
        ),
    )
    for path in written.values():
        print(path)
    return 0


COMMANDS = {
    "prepare": cmd_prepare,
    "train": cmd_train,
    "export": cmd_export,
    "average": cmd_average,
    "translate": cmd_translate,
    "evaluate": cmd_evaluate,
    "plot": cmd_plot,
    "backtranslate": cmd_backtranslate,
    "serving-config": cmd_serving_config,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        # sacrebleu logs each step of a paired test at INFO: noise around the table it feeds.
        logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, and keep Python's
        # own flush at exit from failing on the closed pipe too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
