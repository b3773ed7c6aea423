"""SPARK in the real GRPO loop: judge tasks emitted from step t's rollouts are trained at step t+1 (zero lag)."""
import json
import re
from collections import deque

import pytest

from cotrain_helpers import overrides
from longrm.config import load_config
from longrm.cotrain.run import CotrainConfig, run_cotrain
from longrm.cotrain.trainer import CoTrainer
from longrm.scorers.spark import TASK_MARK


class Capture(CoTrainer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.batches, self.emitted = [], []
        emit = self.scorer.emit_tasks

        def emit_w(batch):
            tasks = emit(batch)
            self.emitted.append(tasks)
            return tasks

        self.scorer.emit_tasks = emit_w

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.batches.append((list(self.scorer_reward.last_samples), self.last_batch["scores"].clone()))
        return out


def _last_int(text: str) -> int | None:
    """The verifier's reading of an answer without "answer is" / boxed text: its last number ("2Tais0" -> 0)."""
    nums = re.findall(r"-?\d+", text)
    return int(nums[-1]) if nums else None


def _sum_of(question: str) -> int:
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", question).groups())
    return a + b


@pytest.mark.slow
def test_emitted_tasks_are_trained_next_step(warm_policy, tmp_path):
    G, P, steps = 4, 4, 4
    out = tmp_path / "spark"
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, out, **{
        # exact checker: its reading of a bare answer is the last number, which the test re-derives independently
        # (math-verify reads some garbage differently: "2Tais0" matches 2 there, 0 here)
        "scorer.name": "spark", "scorer.rule.mode": "exact", "scorer.spark.inject_fraction": 0.5, "scorer.spark.p_pointwise": 0.3,
        "grpo.num_generations": G, "grpo.prompts_per_step": P, "train.max_steps": steps}))
    tr = run_cotrain(cfg, trainer_cls=Capture)
    assert len(tr.batches) == len(tr.emitted) == steps

    # every emitted task's label is right, checked against the arithmetic itself
    for tasks in tr.emitted:
        for t in tasks:
            text = t["prompt"][0]["content"]
            truth = _sum_of(text)
            if t["task"] == "pointwise":
                shown = text.split("Proposed answer: ")[1].split("\n")[0]
                assert t["answer"] == ("Yes" if _last_int(shown) == truth else "No")
            else:
                a = text.split("(A) ")[1].split("\n")[0]
                b = text.split("(B) ")[1].split("\n")[0]
                right = a if t["answer"] == "A" else b
                wrong = b if t["answer"] == "A" else a
                assert _last_int(right) == truth and _last_int(wrong) != truth
    assert sum(len(t) for t in tr.emitted) > 0

    # the queue is replayed exactly: tasks emitted at step t replace the last groups of step t+1's batch
    queue: deque = deque()
    injected_total = 0
    for step, (samples, scores) in enumerate(tr.batches):
        k = min(len(queue), max(1, int(0.5 * P))) if queue else 0
        groups = [samples[i * G:(i + 1) * G] for i in range(P)]
        for j in range(k):
            task = queue.popleft()
            grp = groups[P - 1 - j]
            assert all(s.prompt == task["prompt"][0]["content"] and s.answer == task["answer"] for s in grp)
        for grp in groups[:P - k]:
            assert not grp[0].prompt.startswith(TASK_MARK)  # the rest are dataset prompts
        injected_total += k
        # rewards of task rollouts are the verifier's check of the completion against the label
        for s, r in zip(samples, scores.tolist()):
            if s.prompt.startswith(TASK_MARK):
                word = re.findall(r"[A-Za-z]+", s.completion)
                assert r == float(bool(word) and word[-1].lower() == s.answer.lower()), (s.completion, s.answer, r)
        queue.extend(tr.emitted[step])
    assert injected_total >= 2 * (steps - 1) - 1  # from step 2 on, (almost) every batch trained judge tasks

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "reward" in json.loads(x)]
    assert [r["tasks/injected_groups"] for r in rows][0] == 0 and all("tasks/emitted" in r for r in rows)
