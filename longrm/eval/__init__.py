"""Long-RewardBench-format evaluation (REFERENCE §1.1, §1.8) — ``longrm eval``.

One concern per module:

- :mod:`~longrm.eval.samples` — benchmark rows / our preference records → :class:`EvalSample`;
- :mod:`~longrm.eval.synthetic` — a tiny generated benchmark-shaped set (tests, quickstart);
- :mod:`~longrm.eval.protocol` — judge prompts per mode (seeded shuffle) and answers → rankings;
- :mod:`~longrm.eval.backends` — local HF generate / reward, OpenAI-compatible server;
- :mod:`~longrm.eval.runner` — resumable, data-parallel loop with per-sample appends;
- :mod:`~longrm.eval.metrics` — rank match ratio and the benchmark's aggregates;
- :mod:`~longrm.eval.report`, :mod:`~longrm.eval.plot`, :mod:`~longrm.eval.compare` — JSON, markdown, PNG;
- :mod:`~longrm.eval.pipeline` — the stage's config sections and ``run_eval``.
"""
