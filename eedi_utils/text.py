"""The one place where queries and misconception documents are written out as text."""

from __future__ import annotations

import pandas as pd

from eedi_utils.config import TextConfig


def query_texts(long: pd.DataFrame, config: TextConfig) -> list[str]:
    """One query per wrong answer of a long table (see `data.to_long`)."""
    return [
        config.query_instruction
        + config.query_template.format(
            subject=row.SubjectName,
            construct=row.ConstructName,
            question=row.QuestionText,
            correct_answer=row.CorrectText,
            wrong_answer=row.AnswerText,
        )
        for row in long.itertuples(index=False)
    ]


def misconception_texts(misconceptions: pd.DataFrame, config: TextConfig) -> list[str]:
    """One document per row of the misconception mapping, in the mapping's order."""
    return [
        config.misconception_instruction + config.misconception_template.format(misconception=name)
        for name in misconceptions["MisconceptionName"]
    ]
