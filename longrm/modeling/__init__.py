"""Model-facing compute core: judgement log-probs, last-token rewards, model preparation (issue 3)."""

from longrm.modeling.forward import KernelSettings, branch_logprobs, branch_rewards, prepare_model, target_logprobs

__all__ = ["KernelSettings", "branch_logprobs", "branch_rewards", "prepare_model", "target_logprobs"]
