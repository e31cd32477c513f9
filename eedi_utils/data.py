"""Read and validate the competition CSV files; build the long table (one row per wrong answer).

Every problem raises `DataError`, whose message names the file, the row and the column. Text
is read verbatim: LaTeX, quotes and embedded newlines survive, and words such as "None" or
"NA" stay text.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd

LETTERS = ("A", "B", "C", "D")
QUESTION_COLUMNS = (
    "QuestionId",
    "ConstructId",
    "ConstructName",
    "SubjectId",
    "SubjectName",
    "CorrectAnswer",
    "QuestionText",
    *(f"Answer{letter}Text" for letter in LETTERS),
)
LABEL_COLUMNS = tuple(f"Misconception{letter}Id" for letter in LETTERS)
MAPPING_COLUMNS = ("MisconceptionId", "MisconceptionName")
GENERATED_COLUMN = "Generated"
"""Optional boolean column: True on rows an LLM wrote (originals come first, False)."""
SOURCE_COLUMN = "SourceQuestionId"
"""On generated questions: the real question they were made from; empty if none."""
LONG_COLUMNS = (
    "QuestionId_Answer",
    "QuestionId",
    "Answer",
    "SubjectId",
    "SubjectName",
    "ConstructId",
    "ConstructName",
    "QuestionText",
    "CorrectAnswer",
    "CorrectText",
    "AnswerText",
    "MisconceptionId",
)


class DataError(ValueError):
    """A competition file that cannot be used, located by file, row and column."""

    def __init__(self, path: Path, problem: str, row: str | None = None, column: str | None = None):
        self.path, self.row, self.column = Path(path), row, column
        where = [str(path)]
        if row is not None:
            where.append(row)
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {problem}")


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings, checking encoding, emptiness and the required columns."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(path, "file not found") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            path,
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})",
            row=f"line {line}",
        ) from err
    if not text.strip():
        raise DataError(path, "file is empty")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, csv.Error) as err:
        raise DataError(path, f"not a readable CSV: {err}") from err
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataError(
            path,
            f"missing column(s) {missing}; found {list(frame.columns)}",
            row="header",
            column=missing[0],
        )
    if frame.empty:
        raise DataError(path, "file has a header but no rows")
    return frame


def _parse_int(value: str) -> int | None:
    """Parse '12' or '12.0' (the competition stores ids as floats); None if not an integer."""
    try:
        number = float(value)
    except ValueError:
        return None
    if not number.is_integer():
        return None
    return int(number)


def _int_column(frame: pd.DataFrame, path: Path, column: str, key: str) -> pd.Series:
    values = []
    for position, (value, key_value) in enumerate(zip(frame[column], frame[key]), start=1):
        number = _parse_int(value.strip())
        if number is None:
            raise DataError(
                path,
                f"{value!r} is not an integer",
                row=_row_name(key, key_value, position),
                column=column,
            )
        values.append(number)
    return pd.Series(values, index=frame.index, dtype="int64")


def _row_name(key: str, key_value: str, position: int) -> str:
    return f"row {position} ({key} {key_value})"


def _reject_duplicates(frame: pd.DataFrame, path: Path, column: str) -> None:
    duplicated = frame[column].duplicated()
    if duplicated.any():
        position = int(duplicated.to_numpy().argmax())
        value = frame[column].iloc[position]
        raise DataError(
            path,
            f"duplicate {column} {value}",
            row=_row_name(column, value, position + 1),
            column=column,
        )


def generated_mask(frame: pd.DataFrame, path: Path, key: str) -> pd.Series:
    """The `Generated` column as booleans (all False when absent); other values are errors."""
    if GENERATED_COLUMN not in frame.columns:
        return pd.Series(False, index=frame.index)
    values = frame[GENERATED_COLUMN].str.strip().str.lower()
    known = {"true": True, "1": True, "false": False, "0": False}
    for position, (key_value, value) in enumerate(zip(frame[key], values), start=1):
        if value not in known:
            raise DataError(
                path,
                f"{value!r} is not True or False",
                row=_row_name(key, key_value, position),
                column=GENERATED_COLUMN,
            )
    return values.map(known).astype(bool)


def load_misconceptions(path: str | Path, generated: bool = False) -> pd.DataFrame:
    """Read `misconception_mapping.csv`: integer `MisconceptionId`, text `MisconceptionName`.

    With a `Generated` column, the original rows (False) are returned, or with `generated`
    the LLM-written names (True), each for an id that has an original row.
    """
    path = Path(path)
    frame = _read_table(path, MAPPING_COLUMNS)
    frame["MisconceptionId"] = _int_column(frame, path, "MisconceptionId", "MisconceptionId")
    is_generated = generated_mask(frame, path, "MisconceptionId")
    _reject_duplicates(frame[~is_generated], path, "MisconceptionId")
    has_original = (
        ~is_generated.to_numpy()
        | frame["MisconceptionId"].isin(frame["MisconceptionId"][~is_generated]).to_numpy()
    )
    if not has_original.all():
        position = int((~has_original).argmax())
        raise DataError(
            path,
            "generated name for an id with no original row",
            row=_row_name("MisconceptionId", frame["MisconceptionId"].iloc[position], position + 1),
            column="MisconceptionId",
        )
    for position, (mid, name) in enumerate(
        zip(frame["MisconceptionId"], frame["MisconceptionName"]), start=1
    ):
        if not name.strip():
            raise DataError(
                path,
                "empty misconception name",
                row=_row_name("MisconceptionId", mid, position),
                column="MisconceptionName",
            )
    chosen = is_generated if generated else ~is_generated
    return frame.loc[chosen, list(MAPPING_COLUMNS)].reset_index(drop=True)


def load_questions(
    path: str | Path, misconception_ids: set[int] | None = None, require_labels: bool = False
) -> pd.DataFrame:
    """Read `train.csv` or `test.csv` (one row per question) and validate it.

    Label columns are optional unless `require_labels`; when present, each label must be an
    integer id found in `misconception_ids` (if given) and the correct answer carries none.
    Labels come back as nullable integers (`Int64`, `<NA>` where unlabelled).
    """
    path = Path(path)
    required = QUESTION_COLUMNS + (LABEL_COLUMNS if require_labels else ())
    frame = _read_table(path, required)
    frame["QuestionId"] = _int_column(frame, path, "QuestionId", "QuestionId")
    _reject_duplicates(frame, path, "QuestionId")
    for column in ("ConstructId", "SubjectId"):
        frame[column] = _int_column(frame, path, column, "QuestionId")

    has_labels = all(column in frame.columns for column in LABEL_COLUMNS)
    for position, row in enumerate(frame.itertuples(index=False), start=1):
        row_name = _row_name("QuestionId", row.QuestionId, position)
        correct = row.CorrectAnswer.strip()
        if correct not in LETTERS:
            raise DataError(
                path,
                f"{row.CorrectAnswer!r} is not one of {', '.join(LETTERS)}",
                row=row_name,
                column="CorrectAnswer",
            )
        if has_labels:
            _check_labels(path, row, row_name, correct, misconception_ids)

    frame["CorrectAnswer"] = frame["CorrectAnswer"].str.strip()
    for column in LABEL_COLUMNS:
        if has_labels:
            parsed = [_parse_int(v) if v.strip() else None for v in frame[column]]
            frame[column] = pd.array(parsed, dtype="Int64")
        else:
            frame[column] = pd.array([None] * len(frame), dtype="Int64")
    return frame.reset_index(drop=True)


def _check_labels(
    path: Path, row: tuple, row_name: str, correct: str, misconception_ids: set[int] | None
) -> None:
    for letter, column in zip(LETTERS, LABEL_COLUMNS):
        value = getattr(row, column).strip()
        if not value or value.lower() == "nan":
            continue
        number = _parse_int(value)
        if number is None:
            raise DataError(
                path, f"{value!r} is not an integer misconception id", row=row_name, column=column
            )
        if letter == correct:
            raise DataError(
                path,
                f"the correct answer {letter} carries misconception {number}",
                row=row_name,
                column=column,
            )
        if misconception_ids is not None and number not in misconception_ids:
            raise DataError(
                path,
                f"misconception {number} is not in misconception_mapping.csv",
                row=row_name,
                column=column,
            )


def to_long(questions: pd.DataFrame) -> pd.DataFrame:
    """One row per wrong answer, ordered by question then letter, with `QuestionId_Answer`."""
    rows = []
    for question in questions.itertuples(index=False):
        correct_text = getattr(question, f"Answer{question.CorrectAnswer}Text")
        for letter in LETTERS:
            if letter == question.CorrectAnswer:
                continue
            rows.append(
                {
                    "QuestionId_Answer": f"{question.QuestionId}_{letter}",
                    "QuestionId": question.QuestionId,
                    "Answer": letter,
                    "SubjectId": question.SubjectId,
                    "SubjectName": question.SubjectName,
                    "ConstructId": question.ConstructId,
                    "ConstructName": question.ConstructName,
                    "QuestionText": question.QuestionText,
                    "CorrectAnswer": question.CorrectAnswer,
                    "CorrectText": correct_text,
                    "AnswerText": getattr(question, f"Answer{letter}Text"),
                    "MisconceptionId": getattr(question, f"Misconception{letter}Id"),
                }
            )
    long = pd.DataFrame(rows, columns=list(LONG_COLUMNS))
    long["MisconceptionId"] = long["MisconceptionId"].astype("Int64")
    return long


def labelled(long: pd.DataFrame) -> pd.DataFrame:
    """The rows of a long table that carry a misconception id."""
    return long[long["MisconceptionId"].notna()].reset_index(drop=True)


class CompetitionData:
    """The files of one data folder in Kaggle's layout, loaded and cross-checked."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.misconceptions = load_misconceptions(self.data_dir / "misconception_mapping.csv")
        self._ids = set(self.misconceptions["MisconceptionId"].tolist())

    @property
    def has_train(self) -> bool:
        return (self.data_dir / "train.csv").exists()

    def train_questions(self) -> pd.DataFrame:
        """`train.csv` (one row per question), generated rows included, with a boolean
        `Generated` column (all False when the file has none)."""
        path = self.data_dir / "train.csv"
        questions = load_questions(path, self._ids, require_labels=True)
        questions[GENERATED_COLUMN] = generated_mask(questions, path, "QuestionId")
        return questions

    def train(self) -> pd.DataFrame:
        """Long table of the real rows of `train.csv`, every label checked against the mapping."""
        questions = self.train_questions()
        return to_long(questions[~questions[GENERATED_COLUMN]])

    def misconception_variants(self) -> pd.DataFrame:
        """LLM-written names of known misconceptions (rows flagged `Generated`); may be empty."""
        return load_misconceptions(self.data_dir / "misconception_mapping.csv", generated=True)

    def test(self) -> pd.DataFrame:
        """Long table of `test.csv` (labels, if any, are validated but not needed)."""
        return to_long(load_questions(self.data_dir / "test.csv", self._ids))


def write_data_dir(out: Path, frames: dict[str, pd.DataFrame], copy_from: Path) -> None:
    """Write a data folder: each frame as its CSV through a temporary name (a kill leaves no torn
    file; missing values as empty cells), the other competition files copied from `copy_from`."""
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        partial = out / f".{name}.partial"
        frame.astype(object).where(frame.notna(), "").to_csv(partial, index=False)
        partial.replace(out / name)
    for name in ("train.csv", "test.csv", "misconception_mapping.csv"):
        if name not in frames and (copy_from / name).exists():
            shutil.copyfile(copy_from / name, out / name)
