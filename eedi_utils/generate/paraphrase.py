"""Paraphrase every question text and every misconception name with an LLM.

The output folder is a data folder in the competition's layout: `train.csv` and
`misconception_mapping.csv` hold the originals first, then the paraphrases, with a boolean
`Generated` column (and `SourceQuestionId` on questions); `test.csv` is copied. `eedi train`
evaluates on the originals only and trains on both.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eedi_utils.data import (
    GENERATED_COLUMN,
    SOURCE_COLUMN,
    CompetitionData,
    write_data_dir,
)
from eedi_utils.generate.cache import cache_key
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

PROMPT_VERSION = "paraphrase-v1"

QUESTION_PROMPT = """Rewrite the question text of this maths multiple-choice question {n} times.
Each rewrite must ask exactly the same thing, so the same answers stay right and wrong: keep
every number, expression and LaTeX formula, change only the wording.

Subject: {subject}
Topic: {construct}
Question: {text}
Correct answer: {correct}

Answer with JSON: {{"paraphrases": [{n} different rewrites]}}"""

MISCONCEPTION_PROMPT = """Reword this description of a pupil's maths misconception {n} times.
Each rewording must describe exactly the same mistaken belief, in different words.

Misconception: {text}

Answer with JSON: {{"paraphrases": [{n} different rewordings]}}"""

SYSTEM = "You are a careful maths teacher who writes clear, exact English."


def paraphrase_schema(n: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "paraphrases": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["paraphrases"],
        "additionalProperties": False,
    }


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def usable_paraphrases(original: str, kept: list[str], answer: object) -> list[str]:
    """`kept` plus the new, non-empty, distinct texts of `answer` that differ from `original`."""
    if not isinstance(answer, dict) or not isinstance(answer.get("paraphrases"), list):
        raise UnusableAnswer(f'expected {{"paraphrases": [...]}}, got {str(answer)[:80]!r}')
    seen = {_normal(original), *(_normal(text) for text in kept)}
    result = list(kept)
    for text in answer["paraphrases"]:
        if isinstance(text, str) and text.strip() and _normal(text) not in seen:
            seen.add(_normal(text))
            result.append(text.strip())
    return result


def paraphrase_item(task: str, original: str, prompt: str, config: GenerateConfig) -> Item:
    """An item asking for `config.n` paraphrases, asking again (up to `max_attempts` calls)
    while too few usable ones came back; then it is recorded with what it has."""
    n = config.n
    messages = chat(SYSTEM, prompt)

    async def solve(ask: Ask) -> Outcome:
        kept: list[str] = []
        problems: list[str] = []
        for _ in range(config.max_attempts):
            try:
                kept = usable_paraphrases(
                    original, kept, parse_json(await ask(messages, paraphrase_schema(n)))
                )
            except UnusableAnswer as err:
                problems.append(str(err))
            if len(kept) >= n:
                return Outcome(kept[:n])
        if not kept:
            raise UnusableAnswer("; ".join(problems) or "no usable paraphrase")
        return Outcome(kept, complete=False, note=f"{len(kept)} of {n}; " + "; ".join(problems))

    return Item(
        key=cache_key(task, original, PROMPT_VERSION, config.model, n),
        solve=solve,
        prompt_chars=len(SYSTEM) + len(prompt),
        expected_completion_tokens=n * (len(original) // 4 + 12) + 10,
    )


def question_items(questions: pd.DataFrame, config: GenerateConfig) -> list[Item]:
    items = []
    for row in questions.itertuples(index=False):
        prompt = QUESTION_PROMPT.format(
            n=config.n,
            subject=row.SubjectName,
            construct=row.ConstructName,
            text=row.QuestionText,
            correct=getattr(row, f"Answer{row.CorrectAnswer}Text"),
        )
        items.append(paraphrase_item("question", row.QuestionText, prompt, config))
    return items


def misconception_items(misconceptions: pd.DataFrame, config: GenerateConfig) -> list[Item]:
    return [
        paraphrase_item(
            "misconception", name, MISCONCEPTION_PROMPT.format(n=config.n, text=name), config
        )
        for name in misconceptions["MisconceptionName"]
    ]


def paraphrased_questions(questions: pd.DataFrame, paraphrases: list[list[str]]) -> pd.DataFrame:
    """Originals first (Generated False), then one row per paraphrase with a new QuestionId."""
    originals = questions.assign(
        **{GENERATED_COLUMN: False, SOURCE_COLUMN: questions["QuestionId"]}
    )
    rows = []
    next_id = int(questions["QuestionId"].max()) + 1
    for (_, question), texts in zip(questions.iterrows(), paraphrases):
        for text in texts:
            row = question.copy()
            row["QuestionId"], row["QuestionText"] = next_id, text
            row[GENERATED_COLUMN], row[SOURCE_COLUMN] = True, question["QuestionId"]
            rows.append(row)
            next_id += 1
    return pd.concat([originals, pd.DataFrame(rows)], ignore_index=True)


def paraphrased_misconceptions(
    misconceptions: pd.DataFrame, paraphrases: list[list[str]]
) -> pd.DataFrame:
    originals = misconceptions.assign(**{GENERATED_COLUMN: False})
    rows = [
        {"MisconceptionId": mid, "MisconceptionName": text, GENERATED_COLUMN: True}
        for mid, texts in zip(misconceptions["MisconceptionId"], paraphrases)
        for text in texts
    ]
    return pd.concat([originals, pd.DataFrame(rows)], ignore_index=True)


def paraphrase(
    data: CompetitionData,
    out: Path,
    config: GenerateConfig,
    dry_run: bool = False,
    progress: bool = True,
) -> Summary | Estimate:
    """Paraphrase questions and misconceptions into the data folder `out` (resumable: the
    results cache is `out/cache.jsonl`). A dry run only estimates calls, tokens and cost."""
    questions = None
    if data.has_train:
        questions = data.train_questions()
        questions = questions[~questions[GENERATED_COLUMN]]
    q_items = question_items(questions, config) if questions is not None else []
    m_items = misconception_items(data.misconceptions, config)
    result, found = run_job([*q_items, *m_items], out, config, dry_run, progress)
    if dry_run:
        return result
    texts = [entry["value"] if entry else [] for entry in found]
    frames = {
        "misconception_mapping.csv": paraphrased_misconceptions(
            data.misconceptions, texts[len(q_items) :]
        )
    }
    if questions is not None:
        frames["train.csv"] = paraphrased_questions(questions, texts[: len(q_items)])
    write_data_dir(out, frames, data.data_dir)
    return result
