"""Sources: the synthetic generator, mapped datasets, our records; distractor documents."""
import json

from data_synthesis.config import DistractorConfig, SourceConfig
from data_synthesis.sources import load_distractor_docs, load_source
from data_synthesis.synthetic import RESPONSE_KINDS, generate_task, generate_tasks
from longrm.records import PreferenceRecord, write_records


def test_synthetic_is_deterministic_and_graded():
    a, b = generate_tasks(5, seed=3), generate_tasks(5, seed=3)
    assert [t.__dict__ for t in a] == [t.__dict__ for t in b]
    assert generate_task(4, seed=3).__dict__ == a[4].__dict__        # any index alone
    for t in a:
        assert set(t.kinds) == set(RESPONSE_KINDS) and len(t.responses) == 4
        assert t.reference in t.context and t.hop in (2, 3)
        for kind, grade, resp in zip(t.kinds, t.grades, t.responses):
            if kind == "correct":
                assert grade >= 9 and t.reference in resp
            if kind == "offtopic":
                assert grade <= 1 and t.reference not in resp
    assert len({t.question for t in a}) == 5


def test_dataset_source_with_column_mapping(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [{"qid": f"q{i}", "q": f"question {i}", "passage": f"passage {i}", "gold": f"ans {i}",
             "r1": f"first {i}", "r2": f"second {i}"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SourceConfig.model_validate({"kind": "dataset", "path": str(path), "limit": 4, "columns": {
        "id": "qid", "question": "q", "context": "passage", "reference": "gold", "responses": ["r1", "r2"]}})
    src = load_source(cfg)
    assert len(src) == 4
    ex = src[2]
    assert (ex.id, ex.question, ex.context, ex.reference, ex.responses) == \
        ("q2", "question 2", "passage 2", "ans 2", ["first 2", "second 2"])
    assert [e.id for e in src[1:3]] == ["q1", "q2"]


def test_records_source(tmp_path):
    recs = [PreferenceRecord(prompt=[{"role": "user", "content": "x"}], chosen="c", rejected=["r"], id=f"r{i}",
                             question="q?", context=f"ctx {i}", responses=["a", "b"], reference="gold",
                             metadata={"grades": [9, 2]}) for i in range(3)]
    write_records(recs, tmp_path / "recs.jsonl")
    src = load_source(SourceConfig(kind="records", path=str(tmp_path / "recs.jsonl")))
    assert [e.id for e in src] == ["r0", "r1", "r2"] and src[0].grades == [9, 2] and src[1].context == "ctx 1"


def test_distractor_sources(tmp_path):
    src = load_source(SourceConfig.model_validate({"synthetic": {"num_examples": 6}}))
    docs, owners = load_distractor_docs(DistractorConfig(source="samples", pool_size=4), src)
    assert len(docs) == 4 and all(o.startswith("syn-") for o in owners)
    assert all(d == next(e.context for e in src if e.id == o) for d, o in zip(docs, owners))
    (tmp_path / "c.txt").write_text("doc one\n\ndoc two\n\n\n\ndoc three")
    docs, _ = load_distractor_docs(DistractorConfig(source="corpus", corpus_path=str(tmp_path / "c.txt")), src)
    assert docs == ["doc one", "doc two", "doc three"]
    docs, _ = load_distractor_docs(DistractorConfig(source="synthetic", pool_size=3), src)
    assert len(docs) == 3 and all(len(d) > 200 for d in docs)
