"""Cooper's VerifyRM pre-training data and loss plumbing (REFERENCE §2): hybrid annotation, then BCE.

A VerifyRM reads ``(question, reference answer, response)`` as Cooper's text (:func:`~.longrm_rm.verify_text`:
``<question>…</question>\\n<reference_answer>…</reference_answer>\\n<completion>…</completion>``) and outputs one
logit at the last token: "the response's final answer is equivalent to the reference".  The online loop scores
rollouts with the very same text (``scorer.longrm.input_format: verify``), so pre-training and co-training see the
same input.

**Hybrid annotation** (REFERENCE §2: 65K → 58.7K rows kept).  Two labellers label every row:

- the rule verifier (:class:`~.rule.RuleScorer`): 1 if the response's final answer matches the reference, else 0;
- an LLM judge (a local ``from_pretrained`` chat LM or an OpenAI-compatible server, the backends of
  :func:`~.rubric_refine.make_sampler`), asked :func:`judge_messages`, greedy; its answer is parsed by
  :func:`parse_verdict` (first ``yes`` / ``no`` word; anything else is *unparsed*).

Only the rows where both give the same label are kept (an unparsed judge answer is no agreement).
:class:`AnnotationReport` counts the kept, disagreeing and unparsed rows, per label.

Rows come from a file (``.jsonl`` / ``.parquet`` / ``save_to_disk``: ``question`` or ``prompt`` (text or chat
messages), ``reference`` or ``answer``, ``response`` / ``completion`` or a ``responses`` list, optional ``label``)
or from the built-in arithmetic source :func:`arithmetic_verify_rows` (spec ``arithmetic-verify:…``), whose
questions are exactly the co-training prompts of ``arithmetic:…`` (:mod:`longrm.cotrain.prompts`).

Training (``longrm verifyrm``, stages/verifyrm.py): each labelled row is one sequence, the scalar head is read at
its last token (:func:`longrm.modeling.branch_rewards`), and the loss is binary cross-entropy on the label
(:func:`longrm.losses.pointwise_bce`, Cooper's pre-training loss).
"""
from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .base import Sample, message_text
from ..records import load_rows
from .longrm_rm import verify_text

__all__ = ["VerifyRow", "JUDGE_SYSTEM", "judge_messages", "parse_verdict", "question_text", "arithmetic_verify_rows",
           "parse_verify_spec", "load_verify_rows", "AnnotationReport", "hybrid_annotate", "write_rows",
           "VerifySet", "tokenize_verify", "evaluate_verify", "prepare_sets", "read_rows"]

JUDGE_SYSTEM = ("You verify answers. You see a question, its reference answer and a response. Decide whether the "
                "response's final answer is equivalent to the reference answer; ignore how the response is written. "
                "Reply with one word: Yes or No.")
_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


@dataclass
class VerifyRow:
    """One (question, reference, response) row; ``label`` 1 = the response's answer is right (None: unlabelled)."""

    question: str
    reference: str
    response: str
    id: str = ""
    label: int | None = None
    rule_label: int | None = None
    judge_label: int | None = None
    meta: dict = field(default_factory=dict)

    def sample(self) -> Sample:
        """The row as the co-training loop's :class:`Sample` (prompt = question, completion = response)."""
        return Sample(prompt=self.question, completion=self.response, answer=self.reference)

    def text(self) -> str:
        """Cooper's VerifyRM input for this row (the text the online loop scores)."""
        return verify_text(self.sample())

    def to_row(self) -> dict:
        out = asdict(self)
        out["text"] = self.text()
        return out


def judge_messages(question: str, reference: str, response: str) -> list[dict]:
    """System + user messages asking the LLM judge for a Yes / No verdict on one row."""
    user = (f"[Question]\n{question}\n\n[Reference Answer]\n{reference}\n\n[Response]\n{response}\n\n"
            "Is the response's final answer equivalent to the reference answer? Reply Yes or No.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: Any) -> int | None:
    """Judge text → 1 (the first yes/no word is ``yes``), 0 (``no``), None (no such word, or not a string)."""
    if not isinstance(text, str):
        return None
    m = _VERDICT.search(text)
    if m is None:
        return None
    return int(m.group(1).lower() == "yes")


def question_text(prompt: Any) -> str:
    """A question as the co-training loop's ``Sample.prompt``: a string as is; chat messages → their user turns
    joined by a blank line (all turns when there is no user turn), as ``longrm.cotrain.trainer`` does."""
    if isinstance(prompt, (str, list)):
        return message_text(prompt)
    raise ValueError("question must be a string or a list of {role, content} messages")


# -- the built-in arithmetic source --------------------------------------------------------------------------------

_SPEC_DEFAULTS = {"n": 64, "seed": 0, "max": 9, "ops": "+", "k": 4, "right": 0.5, "long_right": 0.5,
                  "long_wrong": 0.5, "hedge": 0.0}
_LONG = ("{a} {op} {b} = {x}. The answer is {x}.",
         "Let me work it out step by step. {a} {op} {b} gives {x}. So the answer is {x}.",
         "First take {a}, then apply {op} {b}. That makes {x}, so the final answer is {x}.")


def parse_verify_spec(spec: str) -> dict:
    """``"arithmetic-verify:n=8,k=2,long_right=0.9"`` → every key of the source with its value (defaults filled)."""
    out = dict(_SPEC_DEFAULTS)
    body = spec.split(":", 1)[1] if ":" in spec else ""
    for part in filter(None, body.split(",")):
        if "=" not in part:
            raise ValueError(f"{spec!r}: expected key=value, got {part!r}")
        k, v = part.split("=", 1)
        if k not in out:
            raise ValueError(f"{spec!r}: unknown key {k!r} (keys: {', '.join(out)})")
        out[k] = v if k == "ops" else (int(v) if isinstance(out[k], int) else float(v))
    for k in ("right", "long_right", "long_wrong", "hedge"):
        if not 0 <= out[k] <= 1:
            raise ValueError(f"{spec!r}: {k} must be in [0, 1]")
    if out["k"] < 1:
        raise ValueError(f"{spec!r}: k must be >= 1")
    return out


def arithmetic_verify_rows(n: int = 64, seed: int = 0, max: int = 9, ops: str = "+", k: int = 4, right: float = 0.5,
                           long_right: float = 0.5, long_wrong: float = 0.5, hedge: float = 0.0) -> list[VerifyRow]:
    """``n`` arithmetic questions (the prompts of ``arithmetic:n=..,seed=..,max=..,ops=..``) × ``k`` responses.

    Each response is right with probability ``right`` (else its number is off by 1–3).  A right response is
    written in a long, worked form with probability ``long_right`` (else as the bare number), a wrong one with
    probability ``long_wrong``: ``long_right`` ≠ ``long_wrong`` builds a length shortcut into the data on purpose
    (an RM trained on it can prefer long answers).  With probability ``hedge`` the response instead names two
    numbers, ``It is X or Y.``, one of them right (the rule verifier reads the last one; a judge may not agree).
    ``meta`` records ``correct`` (by construction), ``style`` (short / long / hedge) and the numbers.
    """
    from ..cotrain.prompts import arithmetic_rows

    rng = random.Random(f"verify:{seed}")
    rows = []
    for qi, q in enumerate(arithmetic_rows(n=n, seed=seed, max=max, ops=ops)):
        question, ref = question_text(q["prompt"]), q["answer"]
        a, op, b = re.match(r"What is (\d+) (\S) (\d+)\?", question).groups()
        c = int(ref)
        for j in range(k):
            ok = rng.random() < right
            wrong = c + rng.choice([-3, -2, -1, 1, 2, 3])
            x = c if ok else wrong
            if rng.random() < hedge:
                pair = [c, wrong]
                rng.shuffle(pair)
                text, style, ok = f"It is {pair[0]} or {pair[1]}.", "hedge", pair[1] == c
            elif rng.random() < (long_right if ok else long_wrong):
                text, style = rng.choice(_LONG).format(a=a, op=op, b=b, x=x), "long"
            else:
                text, style = str(x), "short"
            rows.append(VerifyRow(question, ref, text, id=f"q{qi}-r{j}", meta={"correct": int(ok), "style": style}))
    return rows


# -- loading -------------------------------------------------------------------------------------------------------

def _first(row: dict, *keys):
    for k in keys:
        if row.get(k) is not None:
            return row[k]
    return None


def load_verify_rows(path: str, split: str | None = "train", limit: int | None = None) -> list[VerifyRow]:
    """Rows of a built-in spec (``arithmetic-verify:…``) or a file / ``save_to_disk`` folder (module docstring).

    A ``responses`` list gives one row per response (ids ``<id>-r<j>``); a ``label`` column (0 / 1) is kept.
    """
    if path.startswith("arithmetic-verify"):
        rows = arithmetic_verify_rows(**parse_verify_spec(path))
        return rows[:limit] if limit else rows
    ds = load_rows(path, split or "train")  # jsonl / json / parquet / a save_to_disk folder
    rows: list[VerifyRow] = []
    for i, r in enumerate(ds):
        try:
            q = _first(r, "question", "prompt")
            ref = _first(r, "reference", "answer")
            if q is None or ref is None:
                raise ValueError("needs 'question' (or 'prompt') and 'reference' (or 'answer')")
            resp = _first(r, "response", "completion")
            many = [resp] if resp is not None else r.get("responses")
            if not many or not all(isinstance(x, str) for x in many):
                raise ValueError("needs 'response' (or 'completion') text or a 'responses' list of texts")
            label = r.get("label")
            if label is not None and label not in (0, 1, True, False):
                raise ValueError(f"label must be 0 or 1, got {label!r}")
        except ValueError as e:
            raise ValueError(f"{path}: row {i}: {e}") from None
        rid = str(r.get("id") or i)
        for j, text in enumerate(many):
            rows.append(VerifyRow(question_text(q), str(ref), text, id=rid if resp is not None else f"{rid}-r{j}",
                                  label=None if label is None else int(label)))
        if limit and len(rows) >= limit:
            break
    return rows[:limit] if limit else rows


# -- hybrid annotation ---------------------------------------------------------------------------------------------

@dataclass
class AnnotationReport:
    """Counts of one hybrid annotation (labels as strings "1" right / "0" wrong)."""

    total: int = 0
    kept: int = 0
    disagreed: int = 0                                   # both labelled, different labels
    judge_unparsed: int = 0                              # no yes/no in the judge's answer (dropped)
    kept_by_label: dict = field(default_factory=dict)    # {"1": n, "0": n}
    rule_by_label: dict = field(default_factory=dict)    # the rule verifier's labels over all rows
    judge_by_label: dict = field(default_factory=dict)   # the judge's parsed labels
    disagreed_by_rule_label: dict = field(default_factory=dict)  # {"1": rule 1 / judge 0, "0": rule 0 / judge 1}

    @property
    def agreement(self) -> float:
        """Kept / parsed rows (NaN when the judge parsed nothing)."""
        parsed = self.total - self.judge_unparsed
        return self.kept / parsed if parsed else math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "agreement": self.agreement}


def hybrid_annotate(rows: Sequence[VerifyRow], rule, judge, *, batch_size: int = 64
                    ) -> tuple[list[VerifyRow], list[VerifyRow], AnnotationReport]:
    """Label every row with the rule verifier and the LLM judge; keep the agreements (REFERENCE §2).

    ``rule.check(response, reference) -> bool``; ``judge.generate(conversations, temperature=0.0) -> texts`` (None for
    a failed request).  Returns ``(kept, all_rows, report)``: every row carries ``rule_label`` and ``judge_label``
    (None when unparsed); the kept ones also carry ``label`` (= both).
    """
    rows = [VerifyRow(r.question, r.reference, r.response, r.id, None, None, None, dict(r.meta)) for r in rows]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        texts = judge.generate([judge_messages(r.question, r.reference, r.response) for r in chunk], temperature=0.0)
        for r, t in zip(chunk, texts):
            r.rule_label = int(bool(rule.check(r.response, r.reference)))
            r.judge_label = parse_verdict(t)
    rep = AnnotationReport(total=len(rows))
    kept, kept_c, rule_c, judge_c, dis_c = [], Counter(), Counter(), Counter(), Counter()
    for r in rows:
        rule_c[str(r.rule_label)] += 1
        if r.judge_label is None:
            rep.judge_unparsed += 1
            continue
        judge_c[str(r.judge_label)] += 1
        if r.judge_label == r.rule_label:
            r.label = r.rule_label
            kept.append(r)
            kept_c[str(r.label)] += 1
        else:
            rep.disagreed += 1
            dis_c[str(r.rule_label)] += 1
    rep.kept = len(kept)
    for name, c in (("kept_by_label", kept_c), ("rule_by_label", rule_c), ("judge_by_label", judge_c),
                    ("disagreed_by_rule_label", dis_c)):
        setattr(rep, name, {"1": c.get("1", 0), "0": c.get("0", 0)})
    return kept, rows, rep


def write_rows(rows: Sequence[VerifyRow], path: str | Path) -> Path:
    """Write rows (with their ``text``) as ``.jsonl`` (or ``.parquet``), atomically (temp file, then rename)."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        from datasets import Dataset

        Dataset.from_list([r.to_row() for r in rows]).to_parquet(str(tmp))
    else:
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r.to_row(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_rows(path: str | Path) -> list[VerifyRow]:
    """Rows written by :func:`write_rows` (``.jsonl``), labels and metadata included."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                d.pop("text", None)
                out.append(VerifyRow(**d))
    return out


def prepare_sets(data, v, out_dir: str | Path, *, main: bool = True, barrier=lambda: None
                 ) -> tuple[list[VerifyRow], list[VerifyRow] | None, dict]:
    """The labelled train (and held-out) rows of ``longrm verifyrm``, written to ``<out_dir>/annotated/``.

    ``data``: the stage's data section (``path`` / ``eval_path`` = unlabelled sources, ``split``, ``limit``);
    ``v``: its ``verifyrm`` section.  With ``v.annotate`` the main process labels both sources by
    :func:`hybrid_annotate` (rule verifier + LLM judge, agreements kept) and writes ``train.jsonl`` / ``eval.jsonl``
    (kept rows), ``train_all.jsonl`` / ``eval_all.jsonl`` (every row with both labels) and ``report.json`` (counts per
    set); without it the rows must already carry ``label``.  A rerun with the same sources and labellers reuses the
    files (``report.json``'s ``key``).  Every process then reads the kept rows.  Returns (train, eval or None, report).
    """
    out = Path(out_dir) / "annotated"
    judge_id = (v.judge_server.model or v.judge.name_or_path, v.judge_server.base_url) \
        if v.judge_backend == "server" else (v.judge.name_or_path,)
    key = {"path": data.path, "split": data.split, "limit": data.limit, "eval_path": data.eval_path,
           "eval_split": data.eval_split, "annotate": v.annotate, "rule_mode": v.rule_mode,
           "judge": [v.judge_backend, *judge_id] if v.annotate else None}
    report_path = out / "report.json"
    sources = {"train": (data.path, data.split, data.limit), "eval": (data.eval_path, data.eval_split, None)}
    if main:
        old = json.loads(report_path.read_text()) if report_path.exists() else None
        if old is None or old.get("key") != key:
            report: dict = {"key": key}
            rule = judge = None
            for name, (path, split, limit) in sources.items():
                if not path:
                    continue
                rows = load_verify_rows(path, split, limit)
                if v.annotate:
                    if judge is None:
                        from .rubric_refine import make_sampler
                        from .rule import RuleScorer

                        rule = RuleScorer(v.rule_mode)
                        judge = make_sampler(v.judge_backend, v.judge, v.judge_server,
                                             max_new_tokens=v.judge_max_new_tokens, batch_size=v.judge_batch_size,
                                             device=v.device)
                    kept, every, rep = hybrid_annotate(rows, rule, judge, batch_size=v.judge_batch_size)
                    write_rows(every, out / f"{name}_all.jsonl")
                    report[name] = rep.to_dict()
                else:
                    missing = [r.id for r in rows if r.label is None]
                    if missing:
                        raise ValueError(f"{path}: verifyrm.annotate is false but {len(missing)} rows have no "
                                         f"'label' (first: {missing[0]})")
                    kept = rows
                    c = Counter(str(r.label) for r in rows)
                    report[name] = {"total": len(rows), "kept": len(rows), "kept_by_label": {"1": c["1"], "0": c["0"]}}
                write_rows(kept, out / f"{name}.jsonl")
            out.mkdir(parents=True, exist_ok=True)
            tmp = report_path.with_name(".report.json.tmp")
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            tmp.replace(report_path)  # written last: a run killed before this point annotates again
    barrier()
    report = json.loads(report_path.read_text())
    train = read_rows(out / "train.jsonl")
    held = read_rows(out / "eval.jsonl") if data.eval_path else None
    return train, held, report


# -- training data -------------------------------------------------------------------------------------------------

@dataclass
class VerifySet:
    """Tokenized labelled rows: one single-branch example per row (the whole verify text), its label and id."""

    examples: list
    labels: list[int]
    ids: list[str]
    skipped: Counter

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return self.examples[i]


def tokenize_verify(rows: Sequence[VerifyRow], tokenizer, max_length: int, truncation: str = "head_tail") -> VerifySet:
    """Rows with labels → examples ``shared_context_example([], [ids])``: the token ids are exactly what
    :class:`~.longrm_rm.LongRMScorer` scores with ``input_format="verify"`` (``tokenizer(verify_text, no special
    tokens)``), the reward read at the last token.  Longer than ``max_length``: ``head_tail`` keeps the first and
    last halves, ``skip`` drops the row, ``error`` stops (counted in ``skipped``)."""
    from ..data.layout import shared_context_example
    from ..data.tokenize import TooLong, keep_head_tail

    out, labels, ids, skipped = [], [], [], Counter()
    for r in rows:
        if r.label is None:
            skipped["no_label"] += 1
            continue
        tok = list(tokenizer(r.text(), add_special_tokens=False)["input_ids"])
        if len(tok) > max_length:
            if truncation == "error":
                raise TooLong(f"{r.id}: {len(tok)} tokens exceed max_length {max_length}")
            if truncation == "skip":
                skipped["skipped_too_long"] += 1
                continue
            skipped["truncated_head_tail"] += 1
            tok = keep_head_tail(tok, max_length)
        if not tok:
            skipped["empty"] += 1
            continue
        out.append(shared_context_example([], [tok]))
        labels.append(int(r.label))
        ids.append(r.id)
    return VerifySet(out, labels, ids, skipped)


def evaluate_verify(module, dataset: VerifySet, collate, step_fn, par, micro_batch_size: int) -> dict:
    """Held-out BCE loss and accuracy (1[logit > 0] = label), example-weighted, identical on every rank;
    ``step_fn`` returns :func:`longrm.losses.pointwise_bce`'s output (its ``correct`` / ``examples`` counts)."""
    import torch
    import torch.distributed as dist

    from ..engine.evaluate import eval_batches

    sums = torch.zeros(4, dtype=torch.float64)  # examples, loss*ex, correct, positives predicted
    with torch.no_grad():
        for idx, w in eval_batches(len(dataset), par, micro_batch_size):
            batch = collate([dataset[i] for i in idx])
            out = step_fn(module, batch, idx)
            ex = batch.num_examples * w
            sums += torch.tensor([ex, float(out.loss) * ex, float(out.metrics["accuracy"]) * ex,
                                  float(out.metrics["predicted_positive"]) * ex], dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dev = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        t = sums.to(dev)
        dist.all_reduce(t)
        sums = t.cpu() / par.sp_size
    ex, loss, correct, pos = sums.tolist()
    n = max(ex, 1)
    return {"loss": loss / n, "accuracy": correct / n, "predicted_positive": pos / n, "examples": ex}
