"""Loading, validation errors and the long table, on the sample, hand-made bad files, real data."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from eedi_utils.data import (
    LABEL_COLUMNS,
    CompetitionData,
    DataError,
    labelled,
    load_misconceptions,
    load_questions,
    to_long,
)


def rewrite(path: Path, change) -> None:
    """Apply `change(rows)` to the list of dict rows of a CSV and write it back."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = list(reader.fieldnames), list(reader)
    fields = change(rows) or fields
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in fields} for row in rows)


def first_labelled_wrong(rows: list[dict]) -> tuple[dict, str]:
    """The first row with a labelled wrong answer, and that answer's label column."""
    for row in rows:
        for column in LABEL_COLUMNS:
            if row[column]:
                return row, column
    raise AssertionError("sample has no labels")


def test_sample_long_table_has_one_row_per_wrong_answer(sample: Path) -> None:
    data = CompetitionData(sample)
    questions = pd.read_csv(sample / "train.csv")
    long = data.train()
    assert len(long) == 3 * len(questions)
    assert not (long["Answer"] == long["CorrectAnswer"]).any()
    assert long["MisconceptionId"].dtype == "Int64"
    assert long["MisconceptionId"].isna().any() and long["MisconceptionId"].notna().any()
    assert (
        long["QuestionId_Answer"] == long["QuestionId"].astype(str) + "_" + long["Answer"]
    ).all()
    assert set(labelled(long)["MisconceptionId"]) <= set(data.misconceptions["MisconceptionId"])


def test_text_survives_verbatim(sample: Path) -> None:
    with (sample / "train.csv").open(encoding="utf-8", newline="") as handle:
        raw = {int(row["QuestionId"]): row for row in csv.DictReader(handle)}
    long = CompetitionData(sample).train()
    multiline = long[long["QuestionText"].str.contains("\n")]
    latex = long[long["QuestionText"].str.contains(r"\(", regex=False)]
    assert len(multiline) and len(latex)
    for row in long.itertuples():
        source = raw[row.QuestionId]
        assert row.QuestionText == source["QuestionText"]
        assert row.AnswerText == source[f"Answer{row.Answer}Text"]
        assert row.CorrectText == source[f"Answer{row.CorrectAnswer}Text"]


def test_na_like_text_and_float_ids_are_read_as_written(data_copy: Path) -> None:
    def change(rows):
        row, column = first_labelled_wrong(rows)
        row[column] = row[column] + ".0"
        wrong = next(c for c in "ABCD" if c != row["CorrectAnswer"])
        row[f"Answer{wrong}Text"] = "None"
        row["QuestionText"] = "NA"

    rewrite(data_copy / "train.csv", change)
    questions = load_questions(data_copy / "train.csv", require_labels=True)
    assert questions.loc[0, "QuestionText"] == "NA"
    assert "None" in set(questions.filter(like="Text").iloc[0])
    assert questions[list(LABEL_COLUMNS)].stack().dtype == "Int64"


def test_test_file_without_labels_gives_missing_labels(sample: Path) -> None:
    long = CompetitionData(sample).test()
    assert len(long) == 3 * len(pd.read_csv(sample / "test.csv"))
    assert long["MisconceptionId"].isna().all()


def test_missing_column_is_named(data_copy: Path) -> None:
    def drop(rows):
        for row in rows:
            row.pop("SubjectName")
        return [field for field in rows[0]]

    rewrite(data_copy / "train.csv", drop)
    with pytest.raises(DataError, match=r"train.csv, header, column SubjectName: missing column"):
        CompetitionData(data_copy).train()


@pytest.mark.parametrize(
    ("change", "column", "fragment"),
    [
        (lambda rows: rows[1].update(CorrectAnswer="E"), "CorrectAnswer", "'E' is not one of"),
        (lambda rows: rows[1].update(QuestionId=rows[0]["QuestionId"]), "QuestionId", "duplicate"),
        (lambda rows: rows[1].update(QuestionId="x1"), "QuestionId", "not an integer"),
    ],
    ids=["bad-correct-answer", "duplicate-question", "non-integer-question-id"],
)
def test_bad_question_rows_name_file_row_and_column(data_copy, change, column, fragment) -> None:
    rewrite(data_copy / "train.csv", change)
    with pytest.raises(DataError) as caught:
        CompetitionData(data_copy).train()
    message = str(caught.value)
    assert "train.csv, row 2 (QuestionId" in message
    assert f"column {column}" in message and fragment in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "'abc' is not an integer"),
        ("3.5", "'3.5' is not an integer"),
        ("99999", "misconception 99999 is not in misconception_mapping.csv"),
    ],
)
def test_bad_labels_are_located(data_copy: Path, value: str, fragment: str) -> None:
    located = {}

    def change(rows):
        row, column = first_labelled_wrong(rows)
        row[column] = value
        located.update(question=row["QuestionId"], column=column)

    rewrite(data_copy / "train.csv", change)
    with pytest.raises(DataError) as caught:
        CompetitionData(data_copy).train()
    message = str(caught.value)
    assert f"QuestionId {located['question']})" in message
    assert f"column {located['column']}" in message and fragment in message


def test_label_on_correct_answer_is_rejected(data_copy: Path) -> None:
    def change(rows):
        rows[0][f"Misconception{rows[0]['CorrectAnswer']}Id"] = "1"

    rewrite(data_copy / "train.csv", change)
    with pytest.raises(
        DataError,
        match=r"row 1 \(QuestionId 0\), column Misconception.Id: the "
        r"correct answer . carries misconception 1",
    ):
        CompetitionData(data_copy).train()


def test_duplicate_misconception_id_is_rejected(data_copy: Path) -> None:
    rewrite(
        data_copy / "misconception_mapping.csv",
        lambda rows: rows[2].update(MisconceptionId=rows[1]["MisconceptionId"]),
    )
    with pytest.raises(
        DataError,
        match=r"misconception_mapping.csv, row 3 \(MisconceptionId 1\), "
        r"column MisconceptionId: duplicate MisconceptionId 1",
    ):
        load_misconceptions(data_copy / "misconception_mapping.csv")


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "train.csv"
    empty.write_text("\n")
    with pytest.raises(DataError, match="train.csv: file is empty"):
        load_questions(empty)
    empty.write_text("MisconceptionId,MisconceptionName\n")
    with pytest.raises(DataError, match="header but no rows"):
        load_misconceptions(empty)


def test_unreadable_encoding_names_the_line(data_copy: Path) -> None:
    path = data_copy / "test.csv"
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    lines[2] = lines[2] + "caf\u00e9"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(DataError, match=r"test.csv, line 3: not UTF-8 text \(byte 0xe9"):
        CompetitionData(data_copy).test()


def test_to_long_orders_by_question_then_letter(sample: Path) -> None:
    questions = load_questions(sample / "train.csv", require_labels=True)
    long = to_long(questions)
    first = questions.iloc[0]
    expected = [f"{first.QuestionId}_{c}" for c in "ABCD" if c != first.CorrectAnswer]
    assert long["QuestionId_Answer"].head(3).tolist() == expected


def test_real_data_counts(real_data: Path) -> None:
    data = CompetitionData(real_data)
    long = data.train()
    assert len(data.misconceptions) == 2587
    assert len(long) == 5607
    assert len(labelled(long)) == 4370
    assert labelled(long)["MisconceptionId"].nunique() == 1604
    assert len(data.test()) == 9


def test_generated_rows_are_flagged_checked_and_kept_apart(data_copy: Path) -> None:
    mapping = data_copy / "misconception_mapping.csv"
    frame = pd.read_csv(mapping, dtype=str, keep_default_na=False)
    first = frame.iloc[0]
    variants = pd.DataFrame(
        {"MisconceptionId": [first["MisconceptionId"]] * 2, "MisconceptionName": ["v1", "v2"]}
    )
    both = pd.concat([frame.assign(Generated="False"), variants.assign(Generated="True")])
    both.to_csv(mapping, index=False)
    data = CompetitionData(data_copy)
    assert len(data.misconceptions) == len(frame)  # retrieval sees each id once
    assert data.misconception_variants()["MisconceptionName"].tolist() == ["v1", "v2"]

    both.assign(Generated=["False"] * len(frame) + ["True", "maybe"]).to_csv(mapping, index=False)
    with pytest.raises(DataError, match=r"row \d+ \(MisconceptionId .*column Generated: 'maybe'"):
        CompetitionData(data_copy)
    orphan = variants.assign(MisconceptionId="999999", Generated="True")
    pd.concat([frame.assign(Generated="False"), orphan]).to_csv(mapping, index=False)
    with pytest.raises(DataError, match="generated name for an id with no original row"):
        CompetitionData(data_copy)
