"""Token layouts: packing and the shared-context layout (pure data, no model code).

REFERENCE §1.5–1.6 (LOGO / DisRM need per-judgement log-probs / last-token rewards), §6 (nobody shares the
context between the chosen and the rejected judgements; we do).

Shared-context layout of one preference example with prompt ``p`` (length P >= 1) and branches
``j_1 .. j_N`` (chosen first, then rejects)::

    tokens    p_0 .. p_{P-2} | p_{P-1} j_1 | p_{P-1} j_2 | ... | p_{P-1} j_N
    positions 0   .. P-2     | P-1 P ...   | P-1 P ...   | ... | P-1 P ...
    branch    0   .. 0       | 1   1 ...   | 2   2 ...   | ... | N   N ...

The last prompt token is repeated at the head of every branch: it is the position whose logits predict the
branch's first token, and one position can carry only one target. Its cost is one token per branch, and the
result is exactly the naive form (each branch appended to its own copy of the prompt). Attention rule
(implemented by ``longrm.attention``): a query at row i may attend to the key at row j iff

    doc[i] == doc[j]  and  j <= i  and  (branch[j] == 0  or  branch[j] == branch[i]).

With an empty prompt every branch is an ordinary causal sequence whose first token carries no target.
SFT is the same layout with one branch; a plain causal-LM sample is ``shared_context_example([], [ids])``.

Branches may also carry their own prompt suffix (cross-response rejects: one judgement scored under prompts that
differ only in the response, REFERENCE §1.5): branch k is ``p_{P-1} s_k j_k`` where ``s_k`` continues the shared
prompt and carries no target; the last token of ``s_k`` (or ``p_{P-1}`` when ``s_k`` is empty) predicts ``j_k[0]``.
The result is again exactly the naive form ``p + s_k + j_k`` per branch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

IGNORE = -100


@dataclass
class Example:
    """One laid-out example (plain Python lists, all of length ``len(input_ids)`` unless noted)."""

    input_ids: list[int]
    position_ids: list[int]
    branch_ids: list[int]  # 0 = shared prompt/context, k = branch k (1-based)
    target_ids: list[int]  # token predicted at this position, IGNORE where none
    last_index: list[int]  # [num_branches] index of the last token of each branch (local to the example)

    @property
    def num_branches(self) -> int:
        return len(self.last_index)

    def __len__(self) -> int:
        return len(self.input_ids)


def shared_context_example(prompt_ids: list[int], branches: list[list[int]],
                           prefixes: list[list[int]] | None = None) -> Example:
    """Lay out ``[prompt | s_1 j_1 | ... | s_N j_N]`` (see the module docstring).

    ``branches[0]`` is the chosen judgement (or the SFT target), ``branches[1:]`` the rejected ones;
    ``prefixes[k]`` (default empty) is branch k's own continuation of the prompt. Targets: every judgement token
    is a target (predicted from the previous position of its own branch, the first one from the last prompt or
    prefix token); prompt and prefix tokens never are.
    """
    if not branches or any(len(b) == 0 for b in branches):
        raise ValueError("need at least one branch and no empty branch")
    if prefixes is not None and len(prefixes) != len(branches):
        raise ValueError(f"{len(prefixes)} prefixes for {len(branches)} branches")
    prompt = list(prompt_ids)
    if prefixes is not None and not prompt and any(prefixes):
        raise ValueError("branch prefixes need a non-empty shared prompt")
    head = prompt[:-1]
    ids, pos, br, tgt, last = list(head), list(range(len(head))), [0] * len(head), [IGNORE] * len(head), []
    for k, branch in enumerate(branches, start=1):
        pre = list(prefixes[k - 1]) if prefixes is not None else []
        seq = ([prompt[-1]] if prompt else []) + pre + list(branch)
        start = len(head)
        ids += seq
        pos += list(range(start, start + len(seq)))
        br += [k] * len(seq)
        tgt += [IGNORE] * len(pre) + seq[1 + len(pre):] + [IGNORE]  # prefix tokens continue the prompt: no target
        last.append(len(ids) - 1)
    return Example(ids, pos, br, tgt, last)


@dataclass
class LayoutBatch:
    """One packed row (B = 1). Tensors are ``[1, L]`` unless noted; N = total branches in the row.

    ``doc_ids`` is -1 on padding. ``target_branch`` holds the global branch index (0..N-1) of the target at
    that position, -1 where there is none. ``last_index[n]`` is the row position of the last token of branch n
    (the DisRM reward is read there); ``branch_example[n]`` its example, ``branch_rank[n]`` its rank inside the
    example (0 = chosen / SFT target, 1.. = rejects).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    doc_ids: torch.Tensor
    branch_ids: torch.Tensor
    target_ids: torch.Tensor
    target_branch: torch.Tensor
    last_index: torch.Tensor  # [N]
    branch_example: torch.Tensor  # [N]
    branch_rank: torch.Tensor  # [N]
    num_examples: int

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    @property
    def num_branches(self) -> int:
        return self.last_index.shape[0]

    def to(self, device) -> "LayoutBatch":
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return LayoutBatch(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in kw.items()})

    def padded(self, length: int, pad_id: int = 0) -> "LayoutBatch":
        """Right-pad the row to ``length`` (padding: doc -1, branch 0, position 0, no target)."""
        extra = length - self.length
        if extra < 0:
            raise ValueError(f"cannot pad a row of {self.length} to {length}")
        if extra == 0:
            return self

        def pad(t, value):
            return torch.cat([t, t.new_full((1, extra), value)], dim=1)

        return LayoutBatch(
            input_ids=pad(self.input_ids, pad_id),
            position_ids=pad(self.position_ids, 0),
            doc_ids=pad(self.doc_ids, -1),
            branch_ids=pad(self.branch_ids, 0),
            target_ids=pad(self.target_ids, IGNORE),
            target_branch=pad(self.target_branch, -1),
            last_index=self.last_index,
            branch_example=self.branch_example,
            branch_rank=self.branch_rank,
            num_examples=self.num_examples,
        )


def pack(examples: list[Example], pad_to_multiple_of: int = 1, pad_id: int = 0) -> LayoutBatch:
    """Concatenate examples into one row; position ids restart per example, attention never crosses them.

    The row is right-padded to a multiple of ``pad_to_multiple_of`` (the model-side functions also pad to the
    sequence-parallel divisor on their own, so 1 is always valid).
    """
    if not examples:
        raise ValueError("pack() needs at least one example")
    ids, pos, doc, br, tgt, tbr, last, bex, brk = [], [], [], [], [], [], [], [], []
    offset, n0 = 0, 0
    for e_idx, ex in enumerate(examples):
        ids += ex.input_ids
        pos += ex.position_ids
        doc += [e_idx] * len(ex)
        br += ex.branch_ids
        tgt += ex.target_ids
        tbr += [n0 + b - 1 if t != IGNORE else -1 for b, t in zip(ex.branch_ids, ex.target_ids)]
        last += [offset + i for i in ex.last_index]
        bex += [e_idx] * ex.num_branches
        brk += list(range(ex.num_branches))
        offset += len(ex)
        n0 += ex.num_branches

    def row(x):
        return torch.tensor([x], dtype=torch.long)

    batch = LayoutBatch(
        input_ids=row(ids),
        position_ids=row(pos),
        doc_ids=row(doc),
        branch_ids=row(br),
        target_ids=row(tgt),
        target_branch=row(tbr),
        last_index=torch.tensor(last, dtype=torch.long),
        branch_example=torch.tensor(bex, dtype=torch.long),
        branch_rank=torch.tensor(brk, dtype=torch.long),
        num_examples=len(examples),
    )
    m = max(1, pad_to_multiple_of)
    return batch.padded(-(-batch.length // m) * m, pad_id)
