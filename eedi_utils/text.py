"""The one place where queries, misconception documents and chat prompts are written out."""

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


Messages = list[dict[str, str]]


def chat(system: str, user: str) -> Messages:
    """A two-turn chat prompt: the system's role, then the user's request."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
