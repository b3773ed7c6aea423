"""Typed config of ``longrm synthesize`` (see ``configs/synthesize.yaml`` for a commented example).

Sections: ``source`` (what to judge), ``expand`` (short-to-long, REFERENCE §1.2), ``judges`` (k voters,
§1.3), ``tasks`` (pointwise / pairwise mix, §1.1), ``vote`` (consistency majority voting, §1.3), ``output``
and ``run`` (sharding, resume, merge).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from longrm.config import ModelConfig, Section

__all__ = ["SynthesizeConfig", "SourceConfig", "ColumnMap", "SyntheticConfig", "DistractorConfig",
           "ExpandConfig", "ServerConfig", "OracleConfig", "JudgeConfig", "TaskConfig", "VoteConfig",
           "OutputConfig", "HeldoutConfig", "RunConfig"]


class ColumnMap(Section):
    id: str | None = Field(None, description="id column (default: row number)")
    question: str = "question"
    context: str = Field("context", description="the short critical context")
    reference: str | None = Field("reference", description="golden answer column (null: none)")
    responses: list[str] = Field(["responses"], description="one list column, or several string columns")
    grades: str | None = Field(None, description="optional list column of gold response grades (0-10)")


class SyntheticConfig(Section):
    num_examples: int = Field(64, ge=1)
    seed: int = 0
    hops: list[int] = Field([2, 3], description="multi-hop depths to draw from (2, 3, 4)")
    responses_per_example: int = Field(4, ge=1, description="candidates per task: correct / partial / "
                                       "hallucinated / off-topic, cycled")
    families: list[Literal["multihop", "lookup", "timeline"]] = Field(
        ["multihop"], description="task families, dealt round-robin over the examples: multihop (founder -> "
        "birthplace chains), lookup (an object's access code), timeline (the year of a town's event)")
    near_miss_facts: int = Field(3, ge=0, description="same-shaped facts about other entities in the critical "
                                 "context (the judge must tell them apart)")


class SourceConfig(Section):
    kind: Literal["synthetic", "records", "dataset"] = Field(
        "synthetic", description="synthetic: built-in generator (no download); records: our preference "
        "records (question/context/responses/reference); dataset: any jsonl/parquet/save_to_disk or hub "
        "dataset with a column mapping")
    path: str = Field("", description="file/folder (records, dataset) or a hub dataset id (dataset)")
    split: str | None = "train"
    limit: int | None = Field(None, ge=1, description="use only the first N examples")
    columns: ColumnMap = ColumnMap()
    synthetic: SyntheticConfig = SyntheticConfig()


class DistractorConfig(Section):
    source: Literal["synthetic", "samples", "corpus"] = Field(
        "synthetic", description="synthetic: generated encyclopedia passages; samples: the other examples' "
        "contexts; corpus: documents from `corpus_path`")
    corpus_path: str = Field("", description="jsonl/parquet/save_to_disk/.txt (one doc per blank-line block)")
    corpus_split: str | None = "train"
    text_column: str = "text"
    pool_size: int = Field(2000, ge=1, description="documents kept in the pool (tokenized once)")
    max_doc_tokens: int = Field(1024, ge=16, description="longer documents are cut into chunks")
    seed: int = 1


class ExpandConfig(Section):
    enabled: bool = Field(True, description="false: keep the short context (no distractors)")
    buckets: list[Literal["4k", "8k", "16k", "32k", "64k", "128k"]] = Field(
        ["4k", "8k"], description="target length buckets, assigned per example")
    bucket_weights: list[float] | None = Field(None, description="sampling weights of `buckets` (default equal)")
    reserve_tokens: int = Field(512, ge=0, description="left free in the bucket for the judgement: target = "
                                "bucket size - reserve_tokens")
    position_range: tuple[float, float] = Field((0.04, 0.9), description="fraction of the context before the "
                                                "critical block, drawn uniformly (official data: 4%-90%)")
    position_choices: list[float] | None = Field(None, description="draw the position from this list instead")
    short_fraction: float = Field(0.0, ge=0, lt=1, description="fraction of examples kept short (not expanded): "
                                  "Stage I trains on original short RM data and long synthetic data together "
                                  "(REFERENCE §1.4)")
    fill_range: tuple[float, float] = Field((1.0, 1.0), description="an expanded prompt's length is drawn "
                                            "uniformly in [lo, hi] × the bucket's target (default: the target), so "
                                            "training also sees lengths between the short and the full-length "
                                            "prompts; held-out rows always use the full target")
    tag_fraction: float = Field(1.0, ge=0, le=1, description="fraction of training prompts whose critical block "
                                "is tagged (the official data tags all; 0 gives prompts shaped like the benchmark's)")
    tag_min_len: int = Field(2, ge=1)
    tag_max_len: int = Field(4, ge=1)
    count: Literal["incremental", "exact"] = Field(
        "incremental", description="incremental: sum of cached piece counts (no long prompt is re-tokenized; "
        "exact for byte-level BPE, checked every `verify_every` tasks); exact: re-count every final prompt with "
        "the chat template (~70 ms per 32K prompt)")
    verify_every: int = Field(50, ge=0, description="incremental: exact-count every Nth prompt; a miss beyond "
                              "`tolerance` switches the run to exact counting (0: never check)")
    tolerance: float = Field(0.01, gt=0, lt=0.5, description="allowed relative miss of the target length")
    tokenizer: str | None = Field(None, description="tokenizer of the judge used for counting; default: the "
                                  "first local judge's model (required with server judges only)")
    distractors: DistractorConfig = DistractorConfig()


class ServerConfig(Section):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (vLLM, SGLang…)")
    model: str = Field("", description="model name the server serves")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key "
                                    "(never logged; unset: no Authorization header)")
    concurrency: int = Field(8, ge=1, description="requests in flight")
    timeout: float = Field(300.0, gt=0, description="seconds per request")
    max_retries: int = Field(4, ge=0, description="retries on timeouts, connection errors, 429/5xx, bad JSON")
    backoff: float = Field(1.0, ge=0, description="first retry delay in seconds (doubles, with jitter)")
    max_backoff: float = Field(30.0, ge=0)
    n_per_request: bool = Field(True, description="ask for all samples with the `n` parameter in one request")
    extra_body: dict = Field({}, description="extra JSON fields of each request (e.g. top_k for vLLM)")


class OracleConfig(Section):
    noise: float = Field(0.25, ge=0, le=1, description="probability a score is off by 1-2 (pairwise: flipped)")
    fail_rate: float = Field(0.05, ge=0, le=1, description="probability of an unparseable judgement")
    position_bias: float = Field(0.1, ge=0, le=1, description="pairwise: probability of answering [[A]] blindly")
    delay_s: float = Field(0.0, ge=0, description="simulated latency per judge call (resume tests and demos)")
    quote: Literal["evidence", "claim", "none"] = Field(
        "evidence", description="pointwise analyses of tasks with gold evidence: evidence = quote the context's "
        "evidence sentence and the response's claim, then weigh them; claim = quote only the response's claim (a "
        "shorter judgement that needs no copy from the long context); none = the verdict alone (no copy at all: what a "
        "small judge can learn before it can copy a token)")
    blind: float = Field(0.0, ge=0, le=1, description="probability the judge misses the evidence (a weak "
                         "long-context judge) and guesses on any response that makes a claim: correct (9-10, the "
                         "evidence misread as agreeing) or invented (1-3); wrong verdicts both ways, which voting "
                         "outvotes and LOGO rejects")
    seed: int = 0


class JudgeConfig(Section):
    name: str | None = Field(None, description="label in `scores` (default: the model name)")
    backend: Literal["hf", "http", "oracle"] = Field(
        "hf", description="hf: local transformers model (batched generate); http: OpenAI-compatible server; "
        "oracle: simulated judge that knows the synthetic gold grades (quickstart/tests only)")
    model: ModelConfig = ModelConfig(gradient_checkpointing=False)
    server: ServerConfig = ServerConfig()
    oracle: OracleConfig = OracleConfig()
    samples: int = Field(1, ge=1, description="judgements drawn from this judge (each one vote)")
    temperature: float = Field(0.7, ge=0, description="sampling temperature (0: greedy, samples must be 1)")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(4, ge=1, description="hf: prompts per generate call")
    max_prompt_tokens: int | None = Field(None, ge=1, description="hf: longer judge prompts fail (counted)")
    seed: int = 0


class TaskConfig(Section):
    pairwise_fraction: float = Field(0.0, ge=0, le=1, description="fraction of examples turned into pairwise "
                                     "[[A]]/[[B]] tasks (kept only if consistent in both orders); rest pointwise")
    max_pointwise_per_example: int | None = Field(None, ge=1, description="responses judged per example")
    pairs_per_example: int = Field(1, ge=1)
    judge_context: Literal["short", "expanded"] = Field(
        "short", description="context the judges see: the short critical one (paper) or the expanded prompt")
    show_reference: bool = Field(True, description="show the golden answer to the judges (never in the "
                                 "training prompt)")
    score_lo: int = 0
    score_hi: int = 10


class VoteConfig(Section):
    min_agree: int | None = Field(None, ge=1, description="votes the majority cluster needs (default: strict "
                                  "majority, > k/2)")
    tie_break: Literal["judge_rank", "drop"] = Field(
        "judge_rank", description="equal top clusters: the one holding the best-ranked judge (order in "
        "`judges`) wins, or drop the task")
    rejects: Literal["others", "dissenting"] = Field(
        "others", description="others: every other judgement, most inconsistent first (official data); "
        "dissenting: only judgements that disagree with the majority (tasks without one are dropped)")
    max_rejects: int | None = Field(None, ge=1)


class OutputConfig(Section):
    dir: str = Field("outputs/synthesize", description="work folder: parts, manifest, report")
    path: str | None = Field(None, description="final dataset: *.jsonl, *.parquet or a save_to_disk folder "
                             "(default: <dir>/data)")
    rm_path: str | None = Field(None, description="also write response preferences for a DisRM here (the best-voted "
                                "response vs the lower-voted ones, benchmark-shaped prompt); null: don't")
    contrast_path: str | None = Field(None, description="also write cross-response judgement preferences for LOGO "
                                      "here (each voted judgement chosen under its own response, rejected under the "
                                      "responses voted differently, one shared context); null: don't")
    overwrite: bool = Field(False, description="wipe a work folder made with a different config")


class HeldoutConfig(Section):
    num_examples: int = Field(0, ge=0, description="held-out synthetic examples written as Long-RewardBench rows "
                              "for evaluation (0: none); never in the training data")
    seed: int = Field(1000, description="generator seed of the held-out examples (must differ from the source's)")
    families: list[Literal["multihop", "lookup", "timeline"]] | None = Field(
        None, description="task families of the held-out rows (default: the source's); name families the "
        "source lacks to evaluate on unseen kinds of task")
    near_miss_facts: int | None = Field(None, ge=0, description="default: the source's")
    buckets: list[Literal["4k", "8k", "16k", "32k", "64k", "128k"]] | None = Field(
        None, description="length buckets, dealt round-robin (default: expand.buckets)")
    best_of_n_fraction: float = Field(0.0, ge=0, le=1, description="fraction of rows that are best-of-N (3-4 "
                                      "ranked candidates) instead of pairwise")
    path: str | None = Field(None, description="jsonl to write (default: <output.dir>/heldout.jsonl)")


class RunConfig(Section):
    num_shards: int = Field(1, ge=1, description="SLURM array size: parts are dealt round-robin to shards")
    shard_index: int = Field(0, ge=0, description="this process's shard (SLURM_ARRAY_TASK_ID)")
    action: Literal["auto", "process", "merge"] = Field(
        "auto", description="auto: process this shard, then merge when num_shards is 1; process: only the "
        "shard; merge: only merge finished parts")
    part_size: int = Field(32, ge=1, description="examples per part (the unit of resume)")
    seed: int = 42


class SynthesizeConfig(Section):
    source: SourceConfig = SourceConfig()
    expand: ExpandConfig = ExpandConfig()
    judges: list[JudgeConfig] = Field(default_factory=lambda: [
        JudgeConfig(name=f"oracle-{i}", backend="oracle", oracle=OracleConfig(seed=i)) for i in range(3)])
    tasks: TaskConfig = TaskConfig()
    vote: VoteConfig = VoteConfig()
    output: OutputConfig = OutputConfig()
    heldout: HeldoutConfig = HeldoutConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _check(self):
        if self.heldout.num_examples:
            if self.source.kind != "synthetic":
                raise ValueError("heldout: held-out rows are generated from the synthetic source only")
            if self.heldout.seed == self.source.synthetic.seed:
                raise ValueError("heldout.seed must differ from source.synthetic.seed (held-out rows would repeat "
                                 "training examples)")
            if not self.expand.enabled:
                raise ValueError("heldout: needs expand.enabled (held-out rows are expanded to a length bucket)")
        if self.run.shard_index >= self.run.num_shards:
            raise ValueError(f"run.shard_index {self.run.shard_index} must be < run.num_shards {self.run.num_shards}")
        if not self.judges:
            raise ValueError("judges: at least one judge is needed")
        names = [j.name for j in self.judges if j.name]
        if len(names) != len(set(names)):
            raise ValueError(f"judges: names must be unique, got {names}")
        if self.expand.bucket_weights is not None and len(self.expand.bucket_weights) != len(self.expand.buckets):
            raise ValueError("expand.bucket_weights must have one weight per bucket")
        if self.expand.tag_min_len > self.expand.tag_max_len:
            raise ValueError("expand.tag_min_len must be <= expand.tag_max_len")
        lo, hi = self.expand.fill_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"expand.fill_range must satisfy 0 < lo <= hi <= 1, got [{lo}, {hi}]")
        return self

    def num_votes(self) -> int:
        return sum(j.samples for j in self.judges)
