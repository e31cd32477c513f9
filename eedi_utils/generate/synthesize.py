"""Write new questions for misconceptions that have no training row, each kept only if an LLM
judge accepts it.

Every new question is few-shot prompted from real rows (question, correct answer, a wrong
answer and the misconception behind it) and targets one misconception; the judge then checks
that the correct answer is right and that the wrong answer follows from that misconception.
The output folder holds the input's train.csv followed by the accepted questions (flagged
`Generated`, no `SourceQuestionId`: they were made from no particular question), the mapping
and test.csv as they were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eedi_utils.data import (
    GENERATED_COLUMN,
    SOURCE_COLUMN,
    CompetitionData,
    labelled,
    write_data_dir,
)
from eedi_utils.generate.cache import cache_key
from eedi_utils.generate.paraphrase import SYSTEM
from eedi_utils.generate.runner import (
    Ask,
    Estimate,
    Item,
    Outcome,
    Summary,
    UnusableAnswer,
    parse_json,
    run_job,
)
from eedi_utils.generate.settings import GenerateConfig
from eedi_utils.text import chat

PROMPT_VERSION = "synthesize-v1"
QUESTION_FIELDS = ("subject", "construct", "question", "correct_answer", "wrong_answer")

EXAMPLE = """Subject: {subject}
Topic: {construct}
Question: {question}
Correct answer: {correct}
Wrong answer: {wrong}
Misconception behind the wrong answer: {misconception}"""

WRITE_PROMPT = """Here are real maths multiple-choice questions, each with a wrong answer that
pupils give because of a misconception:

{examples}

Write one new question, in the same style, whose wrong answer is exactly what a pupil with
this misconception would give (variant {variant}):
Misconception: {misconception}

Answer with JSON: {{"subject": ..., "construct": ..., "question": ..., "correct_answer": ...,
"wrong_answer": ...}}"""

JUDGE_PROMPT = """Check this maths multiple-choice question.
Question: {question}
Correct answer: {correct_answer}
Wrong answer: {wrong_answer}
Misconception: {misconception}

Accept only if the correct answer is right, the wrong answer is wrong, and a pupil with the
misconception would give exactly the wrong answer. Answer with JSON:
{{"accept": true or false, "reason": "..."}}"""

QUESTION_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "string"} for name in QUESTION_FIELDS},
    "required": list(QUESTION_FIELDS),
    "additionalProperties": False,
}
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"accept": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["accept", "reason"],
    "additionalProperties": False,
}


def unseen_misconceptions(data: CompetitionData) -> pd.DataFrame:
    """Misconceptions no real training row is labelled with."""
    seen = set(labelled(data.train())["MisconceptionId"].astype(int)) if data.has_train else set()
    return data.misconceptions[~data.misconceptions["MisconceptionId"].isin(seen)]


def _examples(rows: pd.DataFrame, names: dict[int, str], rng: np.random.Generator, k: int) -> str:
    chosen = rows.iloc[rng.choice(len(rows), size=min(k, len(rows)), replace=False)]
    return "\n\n".join(
        EXAMPLE.format(
            subject=row.SubjectName,
            construct=row.ConstructName,
            question=row.QuestionText,
            correct=row.CorrectText,
            wrong=row.AnswerText,
            misconception=names[int(row.MisconceptionId)],
        )
        for row in chosen.itertuples(index=False)
    )


def _question(answer: object) -> dict[str, str]:
    if not isinstance(answer, dict) or not all(
        isinstance(answer.get(f), str) and answer[f].strip() for f in QUESTION_FIELDS
    ):
        raise UnusableAnswer(f"expected the fields {QUESTION_FIELDS}, got {str(answer)[:80]!r}")
    if answer["correct_answer"].strip() == answer["wrong_answer"].strip():
        raise UnusableAnswer("the wrong answer equals the correct one")
    return {f: answer[f].strip() for f in QUESTION_FIELDS}


def _verdict(answer: object) -> tuple[bool, str]:
    if not isinstance(answer, dict) or not isinstance(answer.get("accept"), bool):
        raise UnusableAnswer(f'expected {{"accept": true|false}}, got {str(answer)[:80]!r}')
    return answer["accept"], str(answer.get("reason", ""))


def synthesis_item(
    misconception_id: int, name: str, variant: int, examples: str, config: GenerateConfig
) -> Item:
    """Write a question for one misconception, then have the judge accept or reject it."""
    prompt = WRITE_PROMPT.format(examples=examples, variant=variant, misconception=name)
    messages = chat(SYSTEM, prompt)
    judge = config.judge_model or config.model

    async def solve(ask: Ask) -> Outcome:
        problems = []
        for _ in range(config.max_attempts):
            try:
                question = _question(parse_json(await ask(messages, QUESTION_SCHEMA)))
                check = JUDGE_PROMPT.format(misconception=name, **question)
                verdict = chat(SYSTEM, check)
                accepted, reason = _verdict(parse_json(await ask(verdict, VERDICT_SCHEMA, judge)))
            except UnusableAnswer as err:
                problems.append(str(err))
                continue
            value = {**question, "misconception_id": misconception_id, "accepted": accepted}
            return Outcome(value, note=reason)
        raise UnusableAnswer("; ".join(problems))

    return Item(
        key=cache_key(
            "synthesize",
            f"{misconception_id}#{variant}\n{name}",
            PROMPT_VERSION,
            f"{config.model}|{judge}",
            config.few_shot,
        ),
        solve=solve,
        prompt_chars=len(SYSTEM) * 2 + len(prompt) + len(JUDGE_PROMPT) + 400,
        expected_completion_tokens=160,
        expected_calls=2,
    )


def synthesis_items(data: CompetitionData, config: GenerateConfig) -> list[Item]:
    rows = labelled(data.train())
    names = dict(
        zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
    )
    items = []
    for misconception in unseen_misconceptions(data).itertuples(index=False):
        for variant in range(config.per_misconception):
            rng = np.random.default_rng([config.seed, int(misconception.MisconceptionId), variant])
            examples = _examples(rows, names, rng, config.few_shot)
            items.append(
                synthesis_item(
                    int(misconception.MisconceptionId),
                    misconception.MisconceptionName,
                    variant,
                    examples,
                    config,
                )
            )
    return items


def accepted_rows(questions: list[dict], first_id: int) -> pd.DataFrame:
    """Train-schema rows: the correct answer is A, the misconception's wrong answer is B."""
    rows = []
    for offset, q in enumerate(questions):
        rows.append(
            {
                "QuestionId": first_id + offset,
                "ConstructId": -1,
                "ConstructName": q["construct"],
                "SubjectId": -1,
                "SubjectName": q["subject"],
                "CorrectAnswer": "A",
                "QuestionText": q["question"],
                "AnswerAText": q["correct_answer"],
                "AnswerBText": q["wrong_answer"],
                "AnswerCText": "",
                "AnswerDText": "",
                "MisconceptionAId": "",
                "MisconceptionBId": q["misconception_id"],
                "MisconceptionCId": "",
                "MisconceptionDId": "",
                GENERATED_COLUMN: True,
                SOURCE_COLUMN: "",
            }
        )
    return pd.DataFrame(rows)


def synthesize(
    data: CompetitionData,
    out: Path,
    config: GenerateConfig,
    dry_run: bool = False,
    progress: bool = True,
) -> Summary | Estimate:
    """New judged questions for unseen misconceptions into the data folder `out` (resumable:
    the results cache is `out/cache.jsonl`). A dry run only estimates calls, tokens and cost."""
    if not data.has_train:
        raise FileNotFoundError(f"{data.data_dir / 'train.csv'} is needed for few-shot examples")
    items = synthesis_items(data, config)
    summary, found = run_job(items, out, config, dry_run, progress)
    if dry_run:
        return summary
    values = [entry["value"] for entry in found if entry]
    accepted = [value for value in values if value["accepted"]]
    summary.rejected = len(values) - len(accepted)
    existing = data.train_questions()
    if SOURCE_COLUMN not in existing.columns:  # real rows only: each is its own source
        existing[SOURCE_COLUMN] = existing["QuestionId"]
    new = accepted_rows(accepted, int(existing["QuestionId"].max()) + 1)
    write_data_dir(out, {"train.csv": pd.concat([existing, new], ignore_index=True)}, data.data_dir)
    return summary
