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
