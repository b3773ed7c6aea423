"""Shared pieces of the benchmarks (tiny Qwen2, data, one training step, memory probes, a scripted chat server)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import torch.nn.functional as F

JUDGEMENT = 256
CHUNK = 256  # LM-head tokens per chunk (judgement-only log-probs): peak O(CHUNK x vocab)
VOCAB = 32000
TUNED_ALLOCATOR = {  # ../shared/notes/trl-dpo-baseline.md: glibc keeps and reuses freed memory
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "1073741824",
}
LEAN_ALLOCATOR = {  # a fixed mmap threshold (no dynamic raise): every block >= 1 MiB is mapped on allocation and
    "MALLOC_MMAP_THRESHOLD_": "1048576",  # unmapped on free, so RSS follows the live tensors (more page faults)
}
ALLOCATORS = {"default": {}, "tuned": TUNED_ALLOCATOR, "lean": LEAN_ALLOCATOR}


def build_model(kind: str = "causal"):
    """Tiny Qwen2-shaped model: hidden 128, intermediate 512, 2 layers, 4 Q / 2 KV heads, vocab 32000, fp32."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=65536, tie_word_embeddings=False, use_cache=False,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").float()


def make_data(context: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(3, VOCAB, (context,), generator=g).tolist()
    judgements = [torch.randint(3, VOCAB, (JUDGEMENT,), generator=g).tolist() for _ in range(3)]
    return ctx, judgements  # chosen = judgements[0], rejects = judgements[1:]


def logo_from_means(mean: torch.Tensor) -> torch.Tensor:
    """REFERENCE §1.5 with beta 2.5, gamma 0.5, lambda 0.05; mean[0] chosen, mean[1:] rejects."""
    delta = mean[0] - mean[1:].mean()
    return -F.logsigmoid(2.5 * delta - 0.5) + 0.05 * (-mean[0])


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_steps(step, steps: int) -> dict:
    """Median wall time and median process CPU time (all threads) of ``steps`` steps after one warm-up.

    CPU time is less sensitive than wall time to other processes competing for the cores (with one thread per
    process it is a steady measure of the work; with several, OpenMP threads spin while waiting for a
    descheduled peer and inflate it). The minimum over the steps is also reported: contention only adds time.
    ``load_avg_1m`` is the 1-minute load average when the steps finished."""
    step()  # warm-up
    wall, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"step_s": statistics.median(wall), "cpu_s": statistics.median(cpu), "min_step_s": min(wall),
            "min_cpu_s": min(cpu), "wall_times": wall, "load_avg_1m": os.getloadavg()[0]}


def optimizer_step(model, opt, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in child output:\n" + text[-2000:])


@contextmanager
def scripted_chat_server(reply):
    """A local OpenAI-compatible ``POST …/chat/completions`` endpoint whose answer is ``reply(messages)`` (a str): the
    stand-in for a judge LLM in the CPU benchmarks (no LLM on this machine judges arithmetic).  Serves on
    127.0.0.1 at a free port and yields its ``…/v1`` base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - OpenAI /chat/completions
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = reply(body["messages"])
            payload = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()
