"""The synthesis pipeline: source → expand → k judges → vote → preference records (REFERENCE §1.2–1.3, §1.9).

Work is cut into *parts* of ``run.part_size`` examples, the unit of resume.  Part ``p`` belongs to shard
``p % run.num_shards`` (a SLURM array task processes one shard).  A finished part is three files under
``<output.dir>/parts/``, each written to a temporary name and renamed:

- ``part-NNNNN.jsonl`` — the kept records (:func:`longrm.records.write_records`);
- ``part-NNNNN.dropped.jsonl`` — one line per dropped task or example: id, reason, votes (no prompts);
- ``part-NNNNN.stats.json`` — counters for the report; written last, so it marks the part finished.

A killed run rerun with the same command skips finished parts and redoes the unfinished one from scratch, so
no row is ever duplicated.  ``manifest.json`` fingerprints the config (sharding, retry and output-path keys
excluded): reusing a work folder with a different config is refused unless ``output.overwrite``.
The merge step concatenates the parts in order into ``output.path`` (jsonl, parquet or a ``save_to_disk``
folder, the format the align / DisRM stages read) and writes ``report.json`` and ``report.md``.  It streams: rows
are read part by part and written in batches of bounded size (Arrow formats go through a memory-mapped scratch
file), so its memory does not grow with the number of rows; the output equals what
:func:`longrm.records.write_records` makes of the whole list of records.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from longrm.config import atomic_write_text, save_resolved
from longrm.records import PreferenceRecord, write_records

from .judges.base import Judgement
from .sources import load_distractor_docs, load_source
from .tasks import Task, TaskBuilder, task_votes
from .vote import vote

__all__ = ["run_synthesis", "process_shard", "merge", "config_fingerprint", "part_name"]

log = logging.getLogger(__name__)

_VOLATILE = {("run", "num_shards"), ("run", "shard_index"), ("run", "action"), ("output", "overwrite"),
             ("output", "path"), ("output", "rm_path"), ("output", "contrast_path")}
_VOLATILE_JUDGE = {"batch_size"}
_VOLATILE_SERVER = {"concurrency", "timeout", "max_retries", "backoff", "max_backoff"}


def _say(msg: str) -> None:
    print(f"[synthesize] {msg}", file=sys.stderr, flush=True)


def config_fingerprint(cfg) -> str:
    """Hash of everything that changes the rows (not sharding, retries, concurrency or the output path)."""
    tree = cfg.model_dump(mode="json")
    tree.pop("heldout", None)  # written after the merge, from its own seed: it never changes the rows
    for sec, key in _VOLATILE:
        tree.get(sec, {}).pop(key, None)
    for j in tree.get("judges", []):
        for k in _VOLATILE_JUDGE:
            j.pop(k, None)
        for k in _VOLATILE_SERVER:
            j.get("server", {}).pop(k, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def part_name(p: int) -> str:
    return f"part-{p:05d}"


def _paths(work: Path, p: int) -> dict[str, Path]:
    base = work / "parts" / part_name(p)
    return {"records": base.with_suffix(".jsonl"), "dropped": Path(str(base) + ".dropped.jsonl"),
            "stats": Path(str(base) + ".stats.json")}


def _check_manifest(cfg, work: Path, num_examples: int) -> dict:
    fp = config_fingerprint(cfg)
    manifest = {"fingerprint": fp, "num_examples": num_examples, "part_size": cfg.run.part_size,
                "num_parts": math.ceil(num_examples / cfg.run.part_size)}
    path = work / "manifest.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("fingerprint") != fp or old.get("num_parts") != manifest["num_parts"]:
            if not cfg.output.overwrite:
                raise RuntimeError(f"{work} holds parts made with a different config (fingerprint "
                                   f"{old.get('fingerprint')} != {fp}); use another output.dir or "
                                   f"--output.overwrite true")
            _say(f"output.overwrite: removing parts of a different config in {work}")
            shutil.rmtree(work / "parts", ignore_errors=True)
        else:
            return old
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return manifest


def _tokenizer_name(cfg) -> str:
    """The tokenizer lengths are counted with: ``expand.tokenizer``, else the first local judge's model."""
    if cfg.expand.tokenizer:
        return cfg.expand.tokenizer
    hf = [j for j in cfg.judges if j.backend == "hf"]
    if hf:
        return hf[0].model.tokenizer or hf[0].model.name_or_path
    if any(j.backend == "http" for j in cfg.judges):
        raise ValueError("expand.tokenizer: set the tokenizer of the served judge model (lengths are counted with "
                         "the judge's tokenizer)")
    return "tiny:qwen2"


def _expander(cfg, tokenizer, dcfg, source):
    from .expand import DistractorPool, Expander

    docs, owners = load_distractor_docs(dcfg, source)
    pool = DistractorPool(docs, tokenizer, max_doc_tokens=dcfg.max_doc_tokens, owners=owners)
    _say(f"distractor pool: {len(pool)} documents, {pool.total_tokens} tokens")
    return Expander(pool, position_range=tuple(cfg.expand.position_range), position_choices=cfg.expand.position_choices,
                    tag_len=(cfg.expand.tag_min_len, cfg.expand.tag_max_len))


def build_heldout(cfg, source) -> Path | None:
    """Write the held-out Long-RewardBench rows (``heldout`` section); returns their path.

    Their distractor documents come from another seed than the training prompts' (``distractors.seed + 1``).
    They are rebuilt on every run (seconds), so a changed ``heldout`` section never leaves stale rows behind."""
    from longrm.config import ModelConfig
    from longrm.models import load_tokenizer

    from .heldout import write_heldout

    h = cfg.heldout
    if not h.num_examples:
        return None
    tok = load_tokenizer(ModelConfig(name_or_path=_tokenizer_name(cfg)))
    dcfg = cfg.expand.distractors.model_copy(update={"seed": cfg.expand.distractors.seed + 1})
    out = write_heldout(cfg, tok, _expander(cfg, tok, dcfg, source))
    _say(f"held-out eval rows: {h.num_examples} in {out}")
    return out


def write_rm_view(cfg, work: Path, kept: list[int]) -> Path | None:
    """Response-preference rows for a DisRM (``output.rm_path``), from the merged judge rows."""
    from .rm_view import response_preferences

    return _write_view(cfg, work, kept, cfg.output.rm_path, response_preferences,
                       "no example has a unique best response among its voted pointwise scores; output.rm_path",
                       "response preferences for a DisRM")


def write_contrast_view(cfg, work: Path, kept: list[int]) -> Path | None:
    """Cross-response judgement preferences for LOGO (``output.contrast_path``), from the merged judge rows."""
    from .rm_view import judgement_contrasts

    return _write_view(cfg, work, kept, cfg.output.contrast_path, judgement_contrasts,
                       "no example has two pointwise responses voted apart; output.contrast_path",
                       "cross-response judgement preferences for LOGO")


def _write_view(cfg, work: Path, kept: list[int], out: str | None, view, empty: str, what: str) -> Path | None:
    if not out:
        return None
    recs = (rec for rec, _ in _merged_records(work, kept, cfg.run.num_shards))
    rows = [r.to_row() for r in view(recs)]
    if not rows:
        raise RuntimeError(f"{work}: {empty} needs pointwise tasks (tasks.pairwise_fraction < 1)")
    path = Path(out)
    _write_merged(lambda: ((r, 0) for r in rows), path)
    _say(f"{what}: {len(rows)} rows in {path}")
    return path


class _Resources:
    """Tokenizer, distractor pool, task builder and judges — built once per process, only when needed."""

    def __init__(self, cfg, source):
        from longrm.config import ModelConfig
        from longrm.models import load_tokenizer

        from .judges import build_judge

        t0 = time.time()
        name = _tokenizer_name(cfg)
        self.tokenizer = load_tokenizer(ModelConfig(name_or_path=name))
        expander = _expander(cfg, self.tokenizer, cfg.expand.distractors, source) if cfg.expand.enabled else None
        self.builder = TaskBuilder(cfg, self.tokenizer, expander)
        self.judges = [(build_judge(j), j) for j in cfg.judges]
        self.voters = []
        for judge, jcfg in self.judges:
            self.voters += [judge.name] if jcfg.samples == 1 else [f"{judge.name}#{s}" for s in range(jcfg.samples)]
        _say(f"ready in {time.time() - t0:.1f}s: tokenizer {name}, {len(self.voters)} votes per task")


def _empty_stats() -> dict:
    return {"examples": 0, "tasks": 0, "kept": 0, "dropped": {}, "kept_by_bucket": {}, "kept_by_kind": {},
            "conf_patterns": {}, "agreement_sum": 0.0, "voted_tasks": 0, "unanimous": 0, "vote_failures": {},
            "per_voter": {}, "pairwise_votes": {"consistent": 0, "order_inconsistent": 0},
            "gold": {"pointwise_n": 0, "pointwise_abs_err": 0.0, "pairwise_n": 0, "pairwise_correct": 0},
            "length_check": {"checked": 0, "abs_err_sum": 0, "over_tolerance": 0},
            "rejects": {"kept": 0, "identical_dropped": 0, "rows_without": 0}, "seconds": 0.0}


def _add(dst: dict, key: str, n: int | float = 1) -> None:
    dst[key] = dst.get(key, 0) + n


def _judge_all(res: _Resources, tasks: list[Task]) -> list[list[list[Judgement]]]:
    """``out[t][r][v]``: vote ``v`` on request ``r`` of task ``t`` (votes of all judges, in judge order)."""
    requests = [r for t in tasks for r in t.requests]
    per_request: list[list[Judgement]] = [[] for _ in requests]
    for judge, jcfg in res.judges:
        if not requests:
            break
        got = judge.judge(requests, n=jcfg.samples)
        for i, js in enumerate(got):
            js = list(js) + [Judgement(None, "missing")] * (jcfg.samples - len(js))
            per_request[i].extend(js[:jcfg.samples])
    out, i = [], 0
    for t in tasks:
        out.append(per_request[i:i + len(t.requests)])
        i += len(t.requests)
    return out


def _process_part(cfg, res: _Resources, source, p: int, paths: dict[str, Path]) -> dict:
    t0 = time.time()
    ps = cfg.run.part_size
    examples = source[p * ps:(p + 1) * ps]
    stats = _empty_stats()
    stats["examples"] = len(examples)
    tasks: list[Task] = []
    dropped_lines: list[dict] = []
    for ex in examples:
        built, drops = res.builder.build(ex)
        tasks.extend(built)
        for reason, n in drops.items():
            _add(stats["dropped"], reason, n)
            dropped_lines.append({"id": ex.id, "reason": reason, "count": n})
    stats["tasks"] = len(tasks)
    stats["length_check"] = dict(res.builder.length_check)
    res.builder.length_check = {k: 0 for k in res.builder.length_check}
    judged = _judge_all(res, tasks)
    vcfg, tcfg = cfg.vote, cfg.tasks
    k = len(res.voters)
    records: list[PreferenceRecord] = []
    for task, js in zip(tasks, judged):
        values, fails, texts = task_votes(task, js, tcfg.score_lo, tcfg.score_hi)
        for name, val, fail in zip(res.voters, values, fails):
            pv = stats["per_voter"].setdefault(name, {"votes": 0, "failures": 0})
            pv["votes"] += 1
            if fail:
                pv["failures"] += 1
                _add(stats["vote_failures"], fail)
            if task.kind == "pairwise" and fail in (None, "order_inconsistent"):
                _add(stats["pairwise_votes"], "consistent" if fail is None else "order_inconsistent")
        result = vote(values, min_agree=vcfg.min_agree, tie_break=vcfg.tie_break, rejects=vcfg.rejects)
        if result.conf:
            _add(stats["conf_patterns"], ",".join(map(str, result.conf)))
        reason = result.reason
        if reason == "too_few_valid":  # name the failure that left too few valid votes
            reason = Counter(f for f in fails if f).most_common(1)[0][0] if any(fails) else "parse_failure"
        reject_idx = [i for i in result.rejects if texts[i] is not None]
        if result.ok:  # a judgement byte-identical to the chosen one is no preference (agreeing judges can write
            # the same text: templated simulated judges always do); as a reject it only dilutes the LOGO margin
            same = [i for i in reject_idx if texts[i] == texts[result.chosen]]
            if same:
                _add(stats["rejects"], "identical_dropped", len(same))
                reject_idx = [i for i in reject_idx if i not in same]
        if vcfg.max_rejects:
            reject_idx = reject_idx[:vcfg.max_rejects]
        scores = {name: int(v) for name, v in zip(res.voters, values)}
        if reason is not None or not result.ok:
            reason = reason or "no_consensus"
            _add(stats["dropped"], reason)
            dropped_lines.append({"id": task.id, "reason": reason, "scores": scores, "conf": result.conf})
            continue
        stats["voted_tasks"] += 1
        _add(stats["rejects"], "kept", len(reject_idx))
        if not reject_idx:  # still a voted SFT target; preference stages skip it (counted there)
            _add(stats["rejects"], "rows_without", 1)
        stats["agreement_sum"] += result.conf[0] / k
        stats["unanimous"] += int(result.conf[0] == k)
        ex = task.example
        meta = dict(task.meta)
        meta.update(task=task.kind, source_id=ex.id, scores=scores, conf=result.conf,
                    chosen_model=res.voters[result.chosen], reject_models=[res.voters[i] for i in reject_idx],
                    chosen_score=result.winner, num_votes=k, judge_context=tcfg.judge_context)
        if ex.meta.get("hop") is not None:
            meta["hop"] = ex.meta["hop"]
        if ex.grades:
            gold = [ex.grades[i] for i in task.response_idx]
            meta["gold_grades"] = gold
            if task.kind == "pointwise":
                stats["gold"]["pointwise_n"] += 1
                stats["gold"]["pointwise_abs_err"] += abs(result.winner - gold[0])
            elif gold[0] != gold[1]:
                stats["gold"]["pairwise_n"] += 1
                stats["gold"]["pairwise_correct"] += int(result.winner == (0 if gold[0] > gold[1] else 1))
        records.append(PreferenceRecord(
            prompt=task.prompt, chosen=texts[result.chosen], rejected=[texts[i] for i in reject_idx], id=task.id,
            question=ex.question, context=ex.context, responses=[ex.responses[i] for i in task.response_idx],
            reference=ex.reference, metadata=meta))
        stats["kept"] += 1
        _add(stats["kept_by_bucket"], meta.get("length_bucket", "short"))
        _add(stats["kept_by_kind"], task.kind)
    stats["seconds"] = round(time.time() - t0, 3)
    write_records(records, paths["records"])
    atomic_write_text(paths["dropped"], "".join(json.dumps(d) + "\n" for d in dropped_lines))
    atomic_write_text(paths["stats"], json.dumps(stats, indent=1))  # last: marks the part finished
    return stats


def process_shard(cfg) -> dict:
    """Process every unfinished part of this shard; returns ``{"done": n, "skipped": n, "parts": n}``."""
    work = Path(cfg.output.dir)
    work.mkdir(parents=True, exist_ok=True)
    source = load_source(cfg.source)
    manifest = _check_manifest(cfg, work, len(source))
    save_resolved(cfg, work, name=f"resolved_config.shard{cfg.run.shard_index}.yaml")
    n_parts = manifest["num_parts"]
    mine = [p for p in range(n_parts) if p % cfg.run.num_shards == cfg.run.shard_index]
    todo = [p for p in mine if not _paths(work, p)["stats"].exists()]
    _say(f"shard {cfg.run.shard_index}/{cfg.run.num_shards}: {len(mine)} of {n_parts} parts, "
         f"{len(mine) - len(todo)} already finished")
    if todo:
        res = _Resources(cfg, source)
        (work / "parts").mkdir(exist_ok=True)
        for n, p in enumerate(todo, 1):
            for stale in (work / "parts").glob(f".{part_name(p)}.*"):  # temp files of a killed run (this shard's)
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
            st = _process_part(cfg, res, source, p, _paths(work, p))
            _say(f"part {p} ({n}/{len(todo)}): kept {st['kept']} of {st['tasks']} tasks from {st['examples']} "
                 f"examples in {st['seconds']:.1f}s; dropped {st['dropped'] or '-'}")
        for judge, _ in res.judges:
            judge.close()
    return {"parts": len(mine), "done": len(todo), "skipped": len(mine) - len(todo)}


def _read_part_records(path: Path):
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                meta = row.get("metadata")
                row["metadata"] = json.loads(meta) if isinstance(meta, str) else (meta or {})
                yield PreferenceRecord(**row), len(line)


# The merge converts rows to Arrow in batches of at most this many rows / bytes of part JSON, so its peak memory
# is bounded by a batch, not by the run (docs/synthesis.md, "Merge"). Module-level so tests can shrink them.
MERGE_BATCH_ROWS = 1000
MERGE_BATCH_BYTES = 32 << 20


def _merged_rows(work: Path, kept: list[int], num_shards: int):
    """``(row, nbytes)`` of every kept record in part order: the rows ``write_records`` would write."""
    for rec, nbytes in _merged_records(work, kept, num_shards):
        yield rec.to_row(), nbytes


def _merged_records(work: Path, kept: list[int], num_shards: int):
    """``(record, nbytes)`` of every kept record in part order.

    ``kept[p]`` is part ``p``'s record count from its stats file; a part file holding another count (changed after
    it was finished) stops the merge, naming the part and its shard."""
    for p, want in enumerate(kept):
        paths, n = _paths(work, p), 0
        for rec, nbytes in _read_part_records(paths["records"]):
            n += 1
            yield rec, nbytes
        if n != want:
            raise RuntimeError(f"{paths['records']} holds {n} records but {paths['stats'].name} says {want}: the "
                               f"part changed after it was finished; delete {part_name(p)}.* and rerun shard "
                               f"{p % num_shards} of {num_shards}")


def _batches(rows):
    batch, size = [], 0
    for row, nbytes in rows:
        batch.append(row)
        size += nbytes
        if len(batch) >= MERGE_BATCH_ROWS or size >= MERGE_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _write_merged(rows, path: Path) -> int:
    """Stream ``rows()`` (a fresh iterator per call) to ``path`` as ``write_records(list(rows()), path)`` would.

    jsonl: one pass, line by line. parquet / save_to_disk: pass 1 infers the column types batch by batch and
    unifies them (what ``Dataset.from_list`` infers over all rows, e.g. a column that is None in one part and text
    in another is text); pass 2 writes the rows with those types to a scratch Arrow file, which is then opened
    memory-mapped and written out by ``datasets`` (``to_parquet`` / ``save_to_disk``). Everything goes to a temporary
    folder beside ``path`` (``.<name>.merge-*``; a killed merge's leftover is removed by the next one) and is
    renamed into place, so a reader never sees half a dataset. Returns the row count.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.merge-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.merge-", dir=path.parent))
    try:
        if path.suffix == ".jsonl":
            target, n = tmp / "out.jsonl", 0
            with open(target, "w") as f:
                for row, _ in rows():
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
            os.replace(target, path)
            return n
        import datasets
        import pyarrow as pa
        from datasets.arrow_writer import ArrowWriter

        schema = None
        for batch in _batches(rows()):
            got = datasets.Dataset.from_list(batch).features.arrow_schema.remove_metadata()
            schema = got if schema is None else pa.unify_schemas([schema, got], promote_options="permissive")
        features = datasets.Features.from_arrow_schema(schema)
        scratch = tmp / "rows.arrow"
        with ArrowWriter(features=features, path=str(scratch)) as writer:
            for batch in _batches(rows()):
                writer.write_batch({col: [r[col] for r in batch] for col in features})
            n, _ = writer.finalize()
        ds = datasets.Dataset.from_file(str(scratch))
        if path.suffix == ".parquet":
            ds.to_parquet(str(tmp / "out.parquet"))
            os.replace(tmp / "out.parquet", path)
        else:
            ds.save_to_disk(str(tmp / "ds"))
            if path.exists():
                os.replace(path, tmp / "old")
            os.replace(tmp / "ds", path)
        del ds
        return n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sum_stats(all_stats: list[dict]) -> dict:
    total = _empty_stats()
    for st in all_stats:
        for key, val in st.items():
            if isinstance(val, dict):
                for k2, v2 in val.items():
                    if isinstance(v2, dict):
                        dst = total[key].setdefault(k2, {})
                        for k3, v3 in v2.items():
                            _add(dst, k3, v3)
                    else:
                        _add(total[key], k2, v2)
            else:
                total[key] += val
    return total


def build_report(total: dict, num_votes: int) -> dict:
    voted = max(1, total["voted_tasks"])
    g = total["gold"]
    pv = total["pairwise_votes"]
    report = {
        "examples": total["examples"], "tasks": total["tasks"], "kept": total["kept"],
        "dropped": dict(sorted(total["dropped"].items(), key=lambda x: -x[1])),
        "kept_by_bucket": total["kept_by_bucket"], "kept_by_kind": total["kept_by_kind"],
        "votes_per_task": num_votes,
        "agreement": {
            "mean_majority_fraction": round(total["agreement_sum"] / voted, 4),
            "unanimous_fraction": round(total["unanimous"] / voted, 4),
            "conf_patterns": dict(sorted(total["conf_patterns"].items(), key=lambda x: -x[1])),
            "vote_failures": total["vote_failures"],
            "failure_rate_per_voter": {n: round(v["failures"] / max(1, v["votes"]), 4)
                                       for n, v in sorted(total["per_voter"].items())},
            "pairwise_order_consistency": round(pv["consistent"] / (pv["consistent"] + pv["order_inconsistent"]), 4)
            if pv["consistent"] + pv["order_inconsistent"] else None,
        },
        "length_check": {"checked": total["length_check"]["checked"],
                         "mean_abs_err_tokens": round(total["length_check"]["abs_err_sum"]
                                                      / max(1, total["length_check"]["checked"]), 2),
                         "over_tolerance": total["length_check"]["over_tolerance"]},
        "rejects": {"per_kept_row": round(total["rejects"]["kept"] / max(1, total["kept"]), 3),
                    "identical_to_chosen_dropped": total["rejects"]["identical_dropped"],
                    "rows_without_rejects": total["rejects"]["rows_without"]},
        "seconds": round(total["seconds"], 1),
    }
    if g["pointwise_n"] or g["pairwise_n"]:
        report["gold"] = {"pointwise_mean_abs_error": round(g["pointwise_abs_err"] / g["pointwise_n"], 3)
                          if g["pointwise_n"] else None,
                          "pairwise_accuracy": round(g["pairwise_correct"] / g["pairwise_n"], 4)
                          if g["pairwise_n"] else None,
                          "pointwise_n": g["pointwise_n"], "pairwise_n": g["pairwise_n"]}
    return report


def _report_md(report: dict, out_path: Path) -> str:
    a = report["agreement"]
    lines = ["# Synthesis report", "", f"Dataset: `{out_path}`", "",
             f"- examples: {report['examples']}, tasks: {report['tasks']}, kept: {report['kept']}",
             f"- votes per task: {report['votes_per_task']}; mean majority fraction {a['mean_majority_fraction']}, "
             f"unanimous {a['unanimous_fraction']}, pairwise order consistency "
             f"{'– (no pairwise tasks)' if a['pairwise_order_consistency'] is None else a['pairwise_order_consistency']}",
             f"- rejects per kept row: {report['rejects']['per_kept_row']} (judgements identical to the chosen one "
             f"dropped: {report['rejects']['identical_to_chosen_dropped']}; rows left without a reject, kept for SFT "
             f"and skipped by preference stages: {report['rejects']['rows_without_rejects']})",
             "", "| bucket | kept |", "| --- | --- |"]
    lines += [f"| {b} | {n} |" for b, n in sorted(report["kept_by_bucket"].items())]
    lines += ["", "| dropped because | tasks |", "| --- | --- |"]
    lines += [f"| {r} | {n} |" for r, n in report["dropped"].items()] or ["| - | 0 |"]
    lines += ["", "| conf (cluster sizes) | tasks |", "| --- | --- |"]
    lines += [f"| [{c}] | {n} |" for c, n in a["conf_patterns"].items()]
    if "gold" in report:
        gold = report["gold"]
        fmt = lambda v: "– (no such tasks)" if v is None else v  # noqa: E731
        lines += ["", f"Against the synthetic gold grades: pointwise mean |score − grade| "
                      f"{fmt(gold['pointwise_mean_abs_error'])}, pairwise accuracy {fmt(gold['pairwise_accuracy'])}."]
    return "\n".join(lines) + "\n"


def merge(cfg) -> dict:
    """Concatenate finished parts into the final dataset and write the report; returns the report."""
    work = Path(cfg.output.dir)
    mpath = work / "manifest.json"
    if not mpath.exists():
        raise RuntimeError(f"{work}: no manifest.json — nothing was processed there")
    manifest = json.loads(mpath.read_text())
    if manifest["fingerprint"] != config_fingerprint(cfg):
        raise RuntimeError(f"{work}: parts were made with a different config; merge with the same config")
    n_parts = manifest["num_parts"]
    missing = [p for p in range(n_parts) if not _paths(work, p)["stats"].exists()]
    if missing:
        shards = sorted({p % cfg.run.num_shards for p in missing})
        raise RuntimeError(f"{work}: {len(missing)} of {n_parts} parts unfinished (e.g. {missing[:5]}); rerun "
                           f"shard(s) {shards[:10]} of {cfg.run.num_shards}")
    stats = [json.loads(_paths(work, p)["stats"].read_text()) for p in range(n_parts)]
    total = _sum_stats(stats)
    out_path = Path(cfg.output.path) if cfg.output.path else work / "data"
    if not total["kept"]:
        raise RuntimeError(f"{work}: every task was dropped ({total['dropped']}); nothing to write")
    kept = [st["kept"] for st in stats]
    n_rows = _write_merged(lambda: _merged_rows(work, kept, cfg.run.num_shards), out_path)
    report = build_report(total, cfg.num_votes())
    report["output"] = str(out_path)
    rm_path = write_rm_view(cfg, work, kept)
    if rm_path is not None:
        report["rm_output"] = str(rm_path)
    contrast_path = write_contrast_view(cfg, work, kept)
    if contrast_path is not None:
        report["contrast_output"] = str(contrast_path)
    atomic_write_text(work / "report.json", json.dumps(report, indent=2))
    atomic_write_text(work / "report.md", _report_md(report, out_path))
    _say(f"merged {n_rows} records from {n_parts} parts into {out_path}; report in {work / 'report.md'}")
    return report


def run_synthesis(cfg) -> dict:
    """``run.action``: process this shard, merge, or both (``auto`` merges when there is one shard)."""
    out: dict = {}
    if cfg.run.action in ("auto", "process"):
        out["process"] = process_shard(cfg)
    if cfg.run.action == "merge" or (cfg.run.action == "auto" and cfg.run.num_shards == 1):
        out["report"] = merge(cfg)
        heldout = build_heldout(cfg, load_source(cfg.source))
        if heldout is not None:
            out["heldout"] = str(heldout)
    return out
