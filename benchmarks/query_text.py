"""What the retriever sees of each query: for query templates and token limits, over the real
labelled train rows and the bundled tokenizer, the share of queries cut at the limit, of rows
whose wrong answer is cut (partly or entirely), and of rows whose query (as cut) is identical to
another row's, with how many of those have a different gold misconception.

    python benchmarks/query_text.py [--data-dir DIR] [--lengths 128 256]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from transformers import AutoTokenizer

from eedi_utils.config import TextConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.embedder import default_model_path
from eedi_utils.text import query_texts

REPO = Path(__file__).resolve().parents[1]
QUESTION_LAST = TextConfig().query_template
QUESTION_FIRST = (
    "Subject: {subject}\nTopic: {construct}\nQuestion: {question}\n"
    "Correct answer: {correct_answer}\nWrong answer: {wrong_answer}"
)
TEMPLATES = {"question first (before)": QUESTION_FIRST, "answers first (default)": QUESTION_LAST}
MARK = "\u2063"  # invisible separator: finds where the wrong answer starts and ends


def measure(rows, template: str, tokenizer, length: int) -> dict:
    marked = rows.assign(AnswerText=MARK + rows["AnswerText"] + MARK)
    texts = query_texts(marked, TextConfig(query_template=template))
    cut, answer_cut, answer_gone = 0, 0, 0
    kept_texts = []
    for text in texts:
        start = text.index(MARK)
        end = text.index(MARK, start + 1) - 1  # in the text without the first mark
        plain = text.replace(MARK, "")
        encoded = tokenizer(plain, truncation=True, max_length=length, return_offsets_mapping=True)
        offsets = [o for o in encoded["offset_mapping"] if o[1] > o[0]]
        last = offsets[-1][1] if offsets else 0
        full = len(tokenizer(plain)["input_ids"])
        cut += full > length
        answer_cut += last < end
        answer_gone += last <= start
        kept_texts.append(plain[:last])
    gold_of = defaultdict(set)
    for text, gold in zip(kept_texts, rows["MisconceptionId"]):
        gold_of[text].add(int(gold))
    counts = defaultdict(int)
    for text in kept_texts:
        counts[text] += 1
    duplicated = sum(1 for text in kept_texts if counts[text] > 1)
    conflicting = sum(1 for text in kept_texts if counts[text] > 1 and len(gold_of[text]) > 1)
    n = len(rows)
    return {
        "rows": n,
        "longer than limit": round(cut / n, 3),
        "wrong answer cut": round(answer_cut / n, 3),
        "wrong answer gone": round(answer_gone / n, 3),
        "duplicate query": duplicated,
        "of those, other gold": conflicting,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    rows = labelled(CompetitionData(args.data_dir).train())
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()), local_files_only=True)
    for name, template in TEMPLATES.items():
        for length in args.lengths:
            print(f"{name:26} {length:4} tokens: {measure(rows, template, tokenizer, length)}")


if __name__ == "__main__":
    main()
