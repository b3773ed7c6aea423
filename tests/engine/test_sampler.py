from longrm.engine.sampler import DPSampler
import pytest


def test_sp_ranks_share_dp_ranks_split():
    n = 23
    shards = []
    for d in range(2):
        s = DPSampler(n, dp_size=2, dp_rank=d, micro_batch_size=3, accumulation=2, seed=7)
        shards.append([i for _, b in s.micro_batches(0) for i in b])
    assert s.steps_per_epoch == 23 // 12 and len(shards[0]) == len(shards[1]) == 6
    assert not set(shards[0]) & set(shards[1])
    # an SP partner has the same dp_rank, so the same construction -> the same examples
    again = DPSampler(n, 2, 0, 3, 2, seed=7)
    assert [i for _, b in again.micro_batches(0) for i in b] == shards[0]


def test_epochs_differ_and_resume_position():
    s = DPSampler(40, 1, 0, 2, 1, seed=0)
    e0 = list(s.micro_batches(0))
    assert [b for _, b in s.micro_batches(0, start=5)] == [b for _, b in e0[5:]]
    assert [b for _, b in s.micro_batches(1)] != [b for _, b in e0]


def test_too_small_dataset_is_explained():
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        DPSampler(3, 2, 0, 2, 1)


def test_eval_batches_cover_once_and_match_in_count():
    from longrm.engine.evaluate import eval_batches
    from longrm.parallel.context import ParallelContext

    n, mb = 7, 2
    got, counts = [], []
    for d in range(2):
        par = ParallelContext(world_size=2, rank=d, sp_size=1, sp_rank=0, dp_size=2, dp_rank=d)
        b = eval_batches(n, par, mb)
        counts.append(len(b))
        got += [i for idx, w in b if w for i in idx]
    assert counts[0] == counts[1]  # same number of forwards on every rank (collectives stay matched)
    assert sorted(got) == list(range(n))


def test_length_curriculum_first_epoch_shortest_first():
    lengths = [50, 10, 40, 10, 30, 20, 60, 10]
    s = DPSampler(8, dp_size=2, dp_rank=0, micro_batch_size=1, accumulation=1, seed=3, curriculum="length",
                  lengths=lengths)
    first = s.order(0)
    assert [lengths[i] for i in first] == sorted(lengths)
    # ties keep the epoch's random order; later epochs are the plain shuffles
    plain = DPSampler(8, 2, 0, 1, 1, seed=3)
    assert [i for i in first if lengths[i] == 10] == [i for i in plain.order(0) if lengths[i] == 10]
    assert s.order(1) == plain.order(1)
    # both DP ranks read interleaved shards of the same sorted order: lengths grow on every rank
    r1 = DPSampler(8, 2, 1, 1, 1, seed=3, curriculum="length", lengths=lengths)
    for smp in (s, r1):
        got = [lengths[b[0]] for _, b in smp.micro_batches(0)]
        assert got == sorted(got)
    with pytest.raises(ValueError, match="one length per example"):
        DPSampler(8, 1, 0, 1, 1, curriculum="length", lengths=[1, 2])
