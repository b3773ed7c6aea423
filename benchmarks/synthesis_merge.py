"""Benchmark: peak memory of the synthesis merge at N and 10 x N rows (streaming vs the old in-memory merge).

Builds a finished synthesis work folder (manifest, ``parts/part-NNNNN.{jsonl,dropped.jsonl,stats.json}``) of fake
rows shaped like real ``longrm synthesize`` rows — a system + user prompt of about ``--prompt-chars`` characters
(default 16,000, ~4K tokens: distractor passages with the tagged critical context inside), the short context,
question, reference, two responses, a chosen and two rejected judgements, and the usual metadata — for N and
10 x N rows, then merges each in its own subprocess (same environment), so peak memories do not mix:

- ``new``: ``data_synthesis.pipeline.merge`` (streaming; what ``longrm synthesize`` runs);
- ``old``: the merge before streaming (every record in one list, then ``longrm.records.write_records``).

Per run: the child's resident memory after imports (``base``), its peak (``ru_maxrss``, which also counts
file-backed pages of memory-mapped Arrow files the process touched — the kernel can drop those at any time) and
its peak anonymous memory (``RssAnon``, sampled every 5 ms: the heap, what really grows with held rows) and
its peak file-backed resident memory (``RssFile``, same sampling: shared libraries plus mapped Arrow pages).
Streaming passes when the peak anonymous memory at 10 x N is within 1.5x of N's.  The last line is one JSON object.

    python benchmarks/synthesis_merge.py [--rows 2000] [--formats folder,parquet,jsonl] [--impls new,old]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FORMATS = {"folder": "data", "parquet": "data.parquet", "jsonl": "data.jsonl"}
PART_SIZE = 32
WORDS = ("the of and to in is was for on that with as by at from his her an were which are this be had not or "
         "river museum council archive harbour station treaty engine festival garden bridge library century "
         "northern western founded elected measured recorded located named built opened closed during after "
         "before between within several annual original former modern ancient central regional").split()


def _cfg(work: Path, fmt: str):
    import yaml

    from data_synthesis.config import SynthesizeConfig

    tree = yaml.safe_load((ROOT / "configs" / "synthesize_tiny.yaml").read_text())
    tree["run"]["part_size"] = PART_SIZE
    tree["output"] = {"dir": str(work), "path": str(work / FORMATS[fmt])}
    return SynthesizeConfig.model_validate(tree)


def build_work(work: Path, rows: int, prompt_chars: int, seed: int = 0) -> int:
    """A finished work folder of ``rows`` fake rows; returns the bytes of its part files."""
    from data_synthesis.pipeline import _empty_stats, config_fingerprint, part_name
    from longrm.records import PreferenceRecord, write_records

    rng = random.Random(seed)
    paragraphs = [" ".join(rng.choices(WORDS, k=rng.randint(60, 160))) + "." for _ in range(400)]

    def text(chars: int) -> str:
        out, n = [], 0
        while n < chars:
            out.append(rng.choice(paragraphs))
            n += len(out[-1]) + 2
        return "\n\n".join(out)[:chars]

    cfg = _cfg(work, "jsonl")
    n_parts = -(-rows // PART_SIZE)
    (work / "parts").mkdir(parents=True)
    (work / "manifest.json").write_text(json.dumps({"fingerprint": config_fingerprint(cfg), "num_examples": rows,
                                                    "part_size": PART_SIZE, "num_parts": n_parts}))
    voters = ["judge-a", "judge-b", "judge-c"]
    size = 0
    for p in range(n_parts):
        records = []
        for i in range(p * PART_SIZE, min(rows, (p + 1) * PART_SIZE)):
            tag, ctx, question = f"QX{i % 97}", text(1200), text(120) + "?"
            docs = text(prompt_chars - len(ctx) - 400)
            cut = docs.rfind("\n\n", 0, len(docs) * 2 // 3) + 2
            user = f"{docs[:cut]}<{tag}>{ctx}</{tag}>\n\n{docs[cut:]}\n\nQuestion: {question}\nResponse: ..."
            judgement = lambda s: f"[Analysis] {text(600)} [Score: {s}]"  # noqa: E731
            scores = {v: rng.randint(0, 10) for v in voters}
            records.append(PreferenceRecord(
                prompt=[{"role": "system", "content": text(500)}, {"role": "user", "content": user}],
                chosen=judgement(8), rejected=[judgement(3), judgement(5)], id=f"ex{i}-pointwise-0",
                question=question, context=ctx, responses=[text(500), text(500)], reference=text(80),
                metadata={"length_bucket": "4k", "target_tokens": 3840, "prompt_tokens": 3801, "token_count":
                          "incremental", "insert_index": 7, "insert_char": cut, "insert_token": 1402,
                          "insert_frac": 0.37, "tag": tag, "num_docs": 14, "task": "pointwise", "source_id": f"ex{i}",
                          "scores": scores, "conf": [2, 1], "chosen_model": "judge-a",
                          "reject_models": ["judge-b", "judge-c"], "chosen_score": 8, "num_votes": 3,
                          "judge_context": "short", "hop": 2, "gold_grades": [3]}))
        paths = work / "parts" / part_name(p)
        write_records(records, paths.with_suffix(".jsonl"))
        Path(f"{paths}.dropped.jsonl").write_text("")
        stats = _empty_stats()
        stats.update(examples=len(records), tasks=len(records), kept=len(records), voted_tasks=len(records),
                     kept_by_bucket={"4k": len(records)}, kept_by_kind={"pointwise": len(records)})
        Path(f"{paths}.stats.json").write_text(json.dumps(stats))
        size += paths.with_suffix(".jsonl").stat().st_size
    return size


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def old_merge(cfg) -> int:
    """The merge before streaming (data_synthesis/pipeline.py up to this benchmark's commit), rows part only."""
    from longrm.records import PreferenceRecord, write_records

    work = Path(cfg.output.dir)
    n_parts = json.loads((work / "manifest.json").read_text())["num_parts"]
    records = []
    for p in range(n_parts):
        with open(work / "parts" / f"part-{p:05d}.jsonl") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    row["metadata"] = json.loads(row["metadata"])
                    records.append(PreferenceRecord(**row))
    write_records(records, cfg.output.path)
    return len(records)


def child(impl: str, work: Path, fmt: str) -> dict:
    import datasets

    from data_synthesis.pipeline import merge

    datasets.disable_progress_bars()
    cfg = _cfg(work, fmt)
    base_kib, peak_anon, peak_file = _status_kib("VmRSS"), [_status_kib("RssAnon")], [_status_kib("RssFile")]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak_anon[0] = max(peak_anon[0], _status_kib("RssAnon"))
            peak_file[0] = max(peak_file[0], _status_kib("RssFile"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    rows = merge(cfg)["kept"] if impl == "new" else old_merge(cfg)
    secs = time.perf_counter() - t0
    stop.set()
    sampler.join()
    out = Path(cfg.output.path)
    out_bytes = sum(f.stat().st_size for f in out.rglob("*")) if out.is_dir() else out.stat().st_size
    return {"impl": impl, "format": fmt, "rows": rows, "seconds": round(secs, 1), "output_mib": out_bytes / 2**20,
            "base_mib": base_kib / 1024, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_anon_mib": peak_anon[0] / 1024, "peak_file_mib": peak_file[0] / 1024}


def run_child(impl: str, work: Path, fmt: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", impl, "--work", str(work), "--formats", fmt]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {fmt} failed:\n{proc.stderr[-3000:]}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(proc.stdout[-2000:])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000, help="N (the second size is 10 x N)")
    ap.add_argument("--prompt-chars", type=int, default=16000)
    ap.add_argument("--formats", default="folder,parquet,jsonl")
    ap.add_argument("--impls", default="new,old")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary folder, removed at the end)")
    ap.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.work), args.formats)))
        return {}

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="synth-merge-bench-"))
    result = {"benchmark": "synthesis_merge", "prompt_chars": args.prompt_chars, "cpu_count": os.cpu_count(),
              "load_avg_1m_start": os.getloadavg()[0], "runs": []}
    try:
        for rows in (args.rows, 10 * args.rows):
            work = scratch / f"rows{rows}"
            t0 = time.perf_counter()
            part_bytes = build_work(work, rows, args.prompt_chars)
            print(f"built {rows} rows ({part_bytes / 2**20:.0f} MiB of parts) in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
            for fmt in args.formats.split(","):
                for impl in args.impls.split(","):
                    r = run_child(impl, work, fmt)
                    r["part_mib"] = part_bytes / 2**20
                    result["runs"].append(r)
                    print(f"{impl:3s} {fmt:7s} {rows:6d} rows ({r['part_mib']:5.0f} MiB parts): "
                          f"{r['seconds']:6.1f} s, base {r['base_mib']:4.0f} MiB, peak RSS {r['peak_rss_mib']:5.0f} "
                          f"MiB, peak anon {r['peak_anon_mib']:5.0f} MiB, file-backed {r['peak_file_mib']:5.0f} MiB",
                          file=sys.stderr, flush=True)
                    for name in FORMATS.values():  # free the disk before the next run
                        out = work / name
                        shutil.rmtree(out) if out.is_dir() else out.unlink(missing_ok=True)
            shutil.rmtree(work)
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    flat = {}
    for fmt in args.formats.split(","):
        for impl in args.impls.split(","):
            small, big = (next(r for r in result["runs"] if r["impl"] == impl and r["format"] == fmt
                               and r["rows"] == n) for n in (args.rows, 10 * args.rows))
            growth = big["peak_anon_mib"] / small["peak_anon_mib"]
            flat[f"{impl}/{fmt}"] = {"anon_growth_10x": round(growth, 2), "flat": growth <= 1.5}
    result["flat"] = flat
    result["load_avg_1m_end"] = os.getloadavg()[0]
    for r in result["runs"]:
        for k in ("output_mib", "base_mib", "peak_rss_mib", "peak_anon_mib", "peak_file_mib", "part_mib"):
            r[k] = round(r[k], 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
