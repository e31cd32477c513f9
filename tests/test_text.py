"""Query and misconception templates, instruction prefixes."""

from __future__ import annotations

from eedi_utils.config import TextConfig
from eedi_utils.data import CompetitionData
from eedi_utils.text import misconception_texts, query_texts


def test_default_query_holds_every_field(sample) -> None:
    data = CompetitionData(sample)
    long = data.train()
    queries = query_texts(long, TextConfig())
    row = long.iloc[0]
    for value in (
        row.SubjectName,
        row.ConstructName,
        row.QuestionText,
        row.CorrectText,
        row.AnswerText,
    ):
        assert value in queries[0]
    assert len(queries) == len(long)


def test_custom_templates_and_instructions(sample) -> None:
    data = CompetitionData(sample)
    config = TextConfig(
        query_template="{question} | {wrong_answer}",
        misconception_template="Misconception: {misconception}",
        query_instruction="Instruct: find the misconception\nQuery: ",
        misconception_instruction="passage: ",
    )
    long = data.test()
    assert query_texts(long, config)[0] == (
        "Instruct: find the misconception\nQuery: "
        f"{long.iloc[0].QuestionText} | {long.iloc[0].AnswerText}"
    )
    documents = misconception_texts(data.misconceptions, config)
    assert (
        documents[3] == "passage: Misconception: " + data.misconceptions.iloc[3].MisconceptionName
    )
    assert len(documents) == len(data.misconceptions)


def test_a_cut_at_max_seq_length_keeps_the_answers(sample) -> None:
    """The question text came last-but-two, so a long question pushed the wrong answer past
    128 tokens (14.9% of the real rows lost it). Now the answers come before the question:
    however long it is, the model sees both answers and the rows stay distinct."""
    from transformers import AutoTokenizer

    from eedi_utils.config import RetrievalConfig
    from eedi_utils.embedder import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
    long = CompetitionData(sample).train().head(8).copy()
    long["QuestionText"] = long["QuestionText"] + " and then" * 200
    length = RetrievalConfig().max_seq_length
    queries = query_texts(long, TextConfig())
    seen = []
    for query, row in zip(queries, long.itertuples()):
        ids = tokenizer(query, truncation=True, max_length=length)["input_ids"]
        assert len(ids) == length  # cut
        kept = tokenizer.decode(ids, skip_special_tokens=True)
        for answer in (row.CorrectText, row.AnswerText):
            expected = tokenizer.decode(tokenizer(answer)["input_ids"], skip_special_tokens=True)
            assert expected in kept
        seen.append(kept)
    assert len(set(seen)) == len(seen)
