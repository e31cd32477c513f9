"""The LLM stage's prompts: the question block, listwise, pointwise and hypothesis messages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from eedi_utils.text import Messages, chat

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
YES_NO = ("Yes", "No")
"""The pointwise answers, each one token; score = log p(Yes) - log p(No)."""
SYSTEM = "You are an experienced maths teacher who diagnoses pupils' misconceptions."


def question_block(row: pd.Series) -> str:
    return (
        f"Subject: {row['SubjectName']}\nTopic: {row['ConstructName']}\n"
        f"Question: {row['QuestionText']}\nCorrect answer: {row['CorrectText']}\n"
        f"Pupil's wrong answer: {row['AnswerText']}"
    )


def listwise_messages(row: pd.Series, candidates: Sequence[str]) -> Messages:
    options = "\n".join(f"{LABELS[i]}. {name}" for i, name in enumerate(candidates))
    prompt = (
        f"{question_block(row)}\n\nWhich misconception most likely led the pupil to this wrong "
        f"answer?\n{options}\n\nReply with the letter only."
    )
    return chat(SYSTEM, prompt)


def pointwise_messages(row: pd.Series, candidate: str) -> Messages:
    prompt = (
        f"{question_block(row)}\n\nMisconception: {candidate}\n\nIs this misconception the likely "
        "cause of the pupil's wrong answer? Reply Yes or No."
    )
    return chat(SYSTEM, prompt)


def hypothesis_messages(row: pd.Series) -> Messages:
    prompt = (
        f"{question_block(row)}\n\nIn one short sentence, name the misconception that most "
        "likely led the pupil to this wrong answer."
    )
    return chat(SYSTEM, prompt)
