"""Policy/reward co-training with GRPO (TRL ``GRPOTrainer``) and one configurable scorer (:mod:`longrm.scorers`).

:mod:`.trainer` — the GRPO glue (rewards from the scorer, group transform on advantages, update hook in Cooper
order); :mod:`.prompts` — prompt sets (built-in arithmetic); :mod:`.run` — config sections and the run.
"""
