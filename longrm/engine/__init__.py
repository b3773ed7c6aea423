"""Training engine on DeepSpeed: start-up, data order, the shared loop, checkpoints, logging, kernels.

Modules: :mod:`.dist` (process group + DP x SP layout), :mod:`.ds_config` (generated DeepSpeed config),
:mod:`.sampler`, :mod:`.trainer` (the loop), :mod:`.checkpoint`, :mod:`.logging`, :mod:`.evaluate`,
:mod:`.refcache` (DPO reference log-probs), :mod:`.kernels` (liger on CUDA), :mod:`.stage` (stage wiring).
Nothing imports DeepSpeed at import time: :func:`.dist.setup_distributed` picks the accelerator first.
"""
