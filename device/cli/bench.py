"""Handlers of `chacha bench latency`, `chacha bench all` and `chacha bench memory`."""

from __future__ import annotations

import json
import os
import statistics
import sys
from argparse import Namespace
from pathlib import Path

from device.config import ChachaConfig
from device.stt import registry as stt_registry

DEFAULT_RECORDING = Path("samples/ko-read-sentence.wav")


def _recording(args: Namespace) -> Path:
    from device.cli.errors import CommandError

    path = args.recording
    if not path.is_file():
        raise CommandError(f"recording {path} not found: give --recording WAV (her utterance)")
    return path


def _check_runs(args: Namespace) -> None:
    from device.cli.errors import CommandError

    if args.runs < 1:
        raise CommandError(f"--runs {args.runs}: give at least 1 turn per scenario")


def bench_latency(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.latency import LLMS, MODES, TTS_ENGINES, Scenario
    from device.bench.report import SCENARIOS, latency
    from device.cli.errors import CommandError

    _check_runs(args)
    scenarios = SCENARIOS
    if args.scenarios:
        scenarios = []
        for spec in args.scenarios.split(","):
            parts = spec.split(":")
            if len(parts) == 3:
                parts.append("default")
            if len(parts) != 4:
                raise CommandError(
                    f"--scenarios: {spec!r} is not stt:tts:llm[:mode] (e.g. hybrid:piper:gemini:text)"
                )
            stt, tts, llm, mode = parts
            if (
                stt not in stt_registry.names()
                or tts not in TTS_ENGINES
                or llm not in LLMS
                or mode not in MODES
            ):
                raise CommandError(
                    f"--scenarios: {spec!r}: stt is {'|'.join(stt_registry.names())}, "
                    f"tts {'|'.join(TTS_ENGINES)}, llm {'|'.join(LLMS)}, mode {'|'.join(MODES)}"
                )
            named = {s.spec: s for s in SCENARIOS}  # the report's own names where it has them
            name = f"{stt} + {tts.capitalize()} + {llm.capitalize()}"
            scenario = Scenario(name if mode == "default" else f"{name}, {mode}", stt, tts, llm, mode)
            scenarios.append(named.get(scenario.spec, scenario))
    results = latency(
        config,
        _recording(args),
        runs=args.runs,
        cores=args.cores,
        scenarios=scenarios,
        first_token_s=args.first_token_s,
        tokens_per_s=args.tokens_per_s,
    )
    report = {"cores": args.cores, "latency": results}
    write_json(args.output, report, indent=2)
    for entry in results:
        m = entry["median_ms"]
        print(
            f"{entry['scenario']['name']}: voice to voice {m['voice_to_voice']:.0f} ms "
            f"(endpoint delay {m['endpoint_delay']:.0f} ms, final text {m['stt_final']:.0f} ms after it; "
            f"naive {m['naive']:.0f} ms, {entry['naive_over_streaming']:.2f}× slower; "
            f"{entry['cut_turns']} of {entry['runs']} turns cut early)"
        )
        for n, run in enumerate(entry["runs_ms"], 1):
            cut = "CUT EARLY, " if run["cut"] else ""
            mode = "audio + quick text" if run["audio_mode"] else "text"
            print(
                f"  {n}. {cut}{mode}: heard {run['heard']!r} (quick: {run['draft']!r}); "
                f"endpoint {run['endpoint_delay']:.0f} ms, voice to voice {run['voice_to_voice']:.0f} ms"
            )
    return 0


def bench_all(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.report import run_all

    _check_runs(args)
    report = run_all(
        config,
        _recording(args),
        runs=args.runs,
        out_dir=args.output_dir,
        docs=args.docs,
        first_token_s=args.first_token_s,
        tokens_per_s=args.tokens_per_s,
    )
    for check in report["targets"]:
        verdict = "met" if check["met"] else f"MISSED by {check['missed_by']} {check['unit']}"
        print(f"{check['what']}: {check['value']} {check['unit']} (target {check['target']}) — {verdict}")
    for check in report.get("end_of_turn", {}).get("targets", []):
        verdict = "met" if check["met"] else f"MISSED by {check['missed_by']} {check['unit']}"
        print(f"{check['what']}: {check['value']} {check['unit']} (target {check['target']}) — {verdict}")
    print(f"\nWrote {args.output_dir / 'bench.json'} and {args.docs} in {report['took_s']:.0f} s.")
    return 0


def bench_memory(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.memory import render, run
    from device.cli.errors import CommandError

    try:
        sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    except ValueError:
        raise CommandError(f"--sizes {args.sizes!r}: give sizes like 100,10000") from None
    if not sizes or sizes[0] < 100:
        raise CommandError("--sizes: each size must be at least 100 memories")
    if args.cores:
        pin_cores(args.cores)
        os.environ["OMP_NUM_THREADS"] = str(args.cores)  # read when the embedding engine loads
    try:
        report = run(sizes, recall_path=args.recall_set, split=args.split)
    except (OSError, ValueError) as exc:
        raise CommandError(f"memory bench: {exc}") from None
    write_json(args.output, report, indent=2)
    print(json.dumps(report, ensure_ascii=False) if args.json else render(report))
    return 0


def bench_limits(args: Namespace, config: ChachaConfig) -> int:
    import tempfile

    from device.bench.limits import render, run

    with tempfile.TemporaryDirectory(prefix="chacha-bench-limits-") as data_dir:
        report = run(Path(data_dir))
    write_json(args.output, report, indent=2)
    print(json.dumps(report, ensure_ascii=False) if args.json else render(report))
    return 0


def register(bench) -> None:
    """Add `latency`, `all`, `memory` and `limits` to the `chacha bench` sub-commands."""
    p = bench.add_parser(
        "limits",
        help="the server's limits against its own process: floods, 100 MB bodies, slow headers, "
        "a 10-minute recording",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--output", type=Path, metavar="JSON", help="write the report as JSON here")
    p.set_defaults(func=bench_limits)
    p = bench.add_parser(
        "memory", help="recall@1/@5 of the right memory per retrieval variant; retrieval speed"
    )
    p.add_argument(
        "--sizes", default="100,10000", help="memories stored, comma-separated (default 100,10000)"
    )
    p.add_argument("--split", choices=("test", "dev", "all"), default="test", help="which questions to ask")
    p.add_argument("--recall-set", type=Path, help="a recall set YAML (default: the packaged one)")
    p.add_argument("--cores", type=int, help="pin to N cores first (1 = a Pi-class budget)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--output", type=Path, help="write the report as JSON here")
    p.set_defaults(func=bench_memory)
    for name, func, text in (
        ("latency", bench_latency, "voice to voice through the real loop, by stage, vs the naive pipeline"),
        ("all", bench_all, "latency, throughput, footprint and load; writes bench/results and docs"),
    ):
        p = bench.add_parser(name, help=text)
        p.add_argument("--runs", type=int, default=5, help="turns per scenario (medians over them)")
        p.add_argument("--recording", type=Path, default=DEFAULT_RECORDING, help="her utterance (WAV)")
        p.add_argument("--first-token-s", type=float, default=0.6, help="paced Gemini: time to first text")
        p.add_argument("--tokens-per-s", type=float, default=60.0, help="paced Gemini: tokens a second")
        p.set_defaults(func=func)
        if name == "latency":
            p.add_argument("--cores", type=int, help="pin to N cores first (1 = a Pi-class budget)")
            p.add_argument(
                "--scenarios",
                help="comma-separated stt:tts:llm[:mode] (mode: default|text|baseline), "
                "e.g. hybrid:piper:gemini:text",
            )
            p.add_argument("--output", type=Path, help="write the results as JSON here")
        else:
            p.add_argument("--output-dir", type=Path, default=Path("bench/results"))
            p.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))


# --- bench ---------------------------------------------------------------------------------


def bench_stt(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.stt import evaluate, load_transcripts
    from device.cli.errors import CommandError
    from device.stt.auto import create_engines

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    known = stt_registry.names()
    unknown = sorted(set(engines) - set(known))
    if unknown or not engines:
        named = ", ".join(unknown) or "(none)"
        raise CommandError(f"unknown engine(s) {named}: choose from {', '.join(known)}")
    if args.repeat < 1:
        raise CommandError(f"--repeat {args.repeat}: give at least 1")
    load_transcripts(args.folder)  # a bad folder fails before minutes of model loading
    stt = config.stt
    if args.cores:
        pin_cores(args.cores)
        stt = stt.model_copy(update={"whisper": stt.whisper.model_copy(update={"cpu_threads": args.cores})})
    loaded = create_engines(stt, engines, debug=args.debug)
    reports, latencies = [], {}
    for name in engines:
        runs = [evaluate(args.folder, loaded[name].transcribe_file) for _ in range(args.repeat)]
        reports.append(runs[-1])  # the first run pays one-off warm-up costs
        latencies[name] = sorted(r.median_final_latency_s for r in runs)
    result = {
        "folder": str(args.folder),
        "cores": args.cores or len(os.sched_getaffinity(0)),
        "repeat": args.repeat,
        "peak_rss_mb": _peak_rss_mb(),
        "engines": [
            {
                **r.as_json(),
                "final_latency_runs_s": latencies[name],
                "final_latency_median_of_runs_s": statistics.median(latencies[name]),
            }
            for name, r in zip(engines, reports, strict=True)
        ],
    }
    write_json(args.output, result, indent=2)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for name, report in zip(engines, reports, strict=True):
            print(report.as_table())
            print(
                f"end of speech → final text, median of {args.repeat} run(s): "
                f"{statistics.median(latencies[name]) * 1000:.0f} ms"
            )
            print()
        print(
            f"Cores: {result['cores']} · peak RSS with {', '.join(engines)} loaded: "
            f"{result['peak_rss_mb']:.0f} MB"
        )
    return 0


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- bench endpoint -------------------------------------------------------------------------


def bench_endpoint(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.endpoint import DEFAULT_VARIANTS, parse_variant, run, table, targets_table
    from device.cli.errors import CommandError

    if args.corpus is not None:
        return _bench_endpoint_corpus(args, config)
    if args.fit is not None:
        raise CommandError("--fit needs --corpus: the model is fitted on a corpus's tune split")
    if not args.sample.is_file():
        raise CommandError(f"recording {args.sample} not found: give --sample WAV (real Korean speech)")
    variants = {}
    for spec in args.variants or DEFAULT_VARIANTS:
        try:
            name, settings = parse_variant(spec)
        except ValueError as exc:
            raise CommandError(f"--variants {exc}") from None
        variants[name] = settings
    result = run(config, args.set_dir, variants, sample=args.sample)
    write_json(args.output, result, indent=1)
    print(table(result))
    print()
    print(targets_table(result["targets"]))
    return 0


def _bench_endpoint_corpus(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.cues import corpus_table, run_corpus, sweep_table
    from device.bench.turn_corpus import CorpusError
    from device.cli.errors import CommandError

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"heard {done} of {total} utterances", file=sys.stderr, flush=True)

    try:
        result = run_corpus(
            config,
            args.corpus,
            fit_to=args.fit,
            first_sound_s=args.first_sound_s,
            per_speaker=args.per_speaker,
            progress=progress,
        )
    except (CorpusError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    write_json(args.output, result, indent=1)
    for split in ("tune", "test"):
        counts = result["splits"][split]
        print(f"\n{split}: {counts['items']} items, speakers {', '.join(counts['speakers'])}")
        print(corpus_table(result, split))
    print("\nthe cue model at other thresholds (test):")
    print(sweep_table(result))
    print()
    for target in result["targets"]:
        verdict = "met" if target["met"] else "MISSED"
        print(f"{target['what']}: {target['value']} (goal ≤ {target['goal']}) {verdict}")
    if args.fit is not None:
        print(f"\nthe model fitted on the tune split is in {args.fit}")
    return 0


def register_endpoint(bench) -> None:
    """Add `endpoint` to the `chacha bench` sub-commands."""
    p = bench.add_parser(
        "endpoint", help="end of turn: false cut-offs at pauses and delay after she finishes"
    )
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="SPEC",
        help="loop settings to compare: adaptive, fixed, or either with changes, e.g. "
        "adaptive:silence_ms=900 fixed:silence_ms=1000 (default: adaptive fixed)",
    )
    p.add_argument("--output", type=Path, metavar="JSON", help="write every utterance's outcome as JSON here")
    p.add_argument(
        "--set-dir",
        type=Path,
        default=Path("build/endpoint-set"),
        help="where the paused utterances are built (default build/endpoint-set)",
    )
    p.add_argument("--sample", type=Path, default=DEFAULT_RECORDING, help="the real recording to pause")
    p.add_argument(
        "--corpus",
        type=Path,
        metavar="MANIFEST",
        help="real speech (device/bench/turn_corpus.py): fit the end-of-turn cues on its tune split "
        "and compare every rule, as tentative ends too, on its test split",
    )
    p.add_argument(
        "--fit", type=Path, metavar="JSON", help="with --corpus: write the fitted model here (the doll's is "
        "device/doll/data/turn_model.json)"
    )  # fmt: skip
    p.add_argument(
        "--per-speaker", type=int, metavar="N", help="with --corpus: at most N utterances of each speaker"
    )
    p.add_argument(
        "--first-sound-s",
        type=float,
        default=0.9,
        metavar="S",
        help="with --corpus: from a tentative end to his first sound (default 0.9 s, the latency bench's)",
    )
    p.set_defaults(func=bench_endpoint)


def pin_cores(cores: int) -> None:
    """Run on the first ``cores`` cores this process may use (1: a Pi-class budget)."""
    from device.cli.errors import CommandError

    available = sorted(os.sched_getaffinity(0))
    if cores < 1 or cores > len(available):
        raise CommandError(f"--cores {cores}: give 1 to {len(available)} (the cores here)")
    os.sched_setaffinity(0, set(available[:cores]))


# --- bench echo -----------------------------------------------------------------------------


def bench_echo(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.echo import run, table
    from device.cli.errors import CommandError
    from tts.engines import create_engine

    if args.rooms < 2:
        raise CommandError(f"--rooms {args.rooms}: give at least 2")
    if args.cores:
        pin_cores(args.cores)
    try:
        report = run(create_engine(config.tts), rooms=args.rooms, take_s=args.seconds)
    except (OSError, ValueError) as exc:
        raise CommandError(f"echo bench: {exc}") from None
    report["cores"] = args.cores
    write_json(args.output, report, indent=1)
    print(table(report))
    return 0


def write_json(path: Path | None, report: dict, *, indent: int = 1) -> None:
    """Write a benchmark's results to ``path`` (its folder made), unless it is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def bench_wake(args: Namespace, config: ChachaConfig) -> int:
    from device.bench.wake import load_corpus, run, samples_corpus, table
    from device.cli.errors import CommandError

    if not 1 <= args.enrol <= 10:
        raise CommandError(f"--enrol {args.enrol}: give 1 to 10 recordings")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise CommandError(f"--threshold {args.threshold:g}: give a distance between 0 and 1")
    if args.cores:
        pin_cores(args.cores)
    try:
        if args.corpus is None:
            print(
                "No --corpus: the repository's samples (one phrase said twice): this shows the bench runs, "
                'not how well the method works (docs/benchmarks.md, "Wake phrase").'
            )
            report = run(samples_corpus(), enrol=1, threshold=args.threshold)
        else:
            report = run(load_corpus(args.corpus), enrol=args.enrol, threshold=args.threshold)
    except (OSError, ValueError) as exc:
        raise CommandError(f"wake bench: {exc}") from None
    report["cores"] = args.cores
    write_json(args.output, report, indent=1)
    print(table(report))
    return 0


def register_wake(bench) -> None:
    """Add `wake` to the `chacha bench` sub-commands."""
    p = bench.add_parser(
        "wake", help="the enrolled wake phrase on real speech: detection, false wakes per hour, cost"
    )
    p.add_argument(
        "--corpus", type=Path, metavar="JSON", help="a corpus manifest (default: the repository's samples)"
    )
    p.add_argument(
        "--enrol", type=int, default=3, help="recordings enrolled per speaker and phrase (default 3)"
    )
    p.add_argument("--threshold", type=float, help="report at this threshold instead of the tuned one")
    p.add_argument("--cores", type=int, help="pin to N cores first (1 = a Pi-class budget)")
    p.add_argument("--output", type=Path, metavar="JSON", help="write the results as JSON here")
    p.set_defaults(func=bench_wake)


def register_echo(bench) -> None:
    """Add `echo` to the `chacha bench` sub-commands."""
    p = bench.add_parser(
        "echo", help="echo canceller and barge-in by voice in simulated rooms (tuned, then held out)"
    )
    p.add_argument("--rooms", type=int, default=16, help="rooms per set (default 16)")
    p.add_argument("--seconds", type=float, default=40.0, help="his speech per room, seconds (default 40)")
    p.add_argument("--cores", type=int, help="pin to N cores first (1 = a Pi-class budget)")
    p.add_argument("--output", type=Path, metavar="JSON", help="write the results as JSON here")
    p.set_defaults(func=bench_echo)
