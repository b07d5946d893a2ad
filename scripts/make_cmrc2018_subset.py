"""Derive ``benchmarks/data/cmrc2018/`` (a small Chinese retrieval set) from the CMRC 2018 dev set.

Source: https://github.com/ymcui/cmrc2018 (commit c0eb1b6ba219847457e6af3180da722bbeb656af),
file ``squad-style-data/cmrc2018_dev.json``, licensed CC BY-SA 4.0 (the repository's ``LICENCE``).

Usage::

    python scripts/make_cmrc2018_subset.py PATH/TO/cmrc2018_dev.json [--out benchmarks/data/cmrc2018]

Deterministic: the first ``--passages`` paragraphs of the dev file, in file order (no filtering by
length or content), and for each of them its first ``--questions-per-passage`` questions. Each
paragraph becomes a passage ``{"id", "title", "text"}`` (text = the paragraph's ``context``,
unchanged); each question becomes ``{"id", "question", "passage_id", "answer"}`` (answer = the first
reference answer span, which occurs in the passage). The retrieval task: given the question, find
its passage among all passages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "cmrc2018"


def derive(
    dev: dict[str, Any], passages: int, per_passage: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    out_passages: list[dict[str, str]] = []
    out_questions: list[dict[str, str]] = []
    for article in dev["data"]:
        for paragraph in article["paragraphs"]:
            if len(out_passages) == passages:
                return out_passages, out_questions
            pid = str(paragraph["id"])
            context = str(paragraph["context"])
            out_passages.append({"id": pid, "title": str(article["title"]), "text": context})
            for qa in paragraph["qas"][:per_passage]:
                answer = str(qa["answers"][0]["text"])
                if answer not in context:  # never in the dev set; guards a changed source file
                    raise ValueError(f"{qa['id']}: answer {answer!r} is not in its passage")
                out_questions.append(
                    {
                        "id": str(qa["id"]),
                        "question": str(qa["question"]),
                        "passage_id": pid,
                        "answer": answer,
                    }
                )
    return out_passages, out_questions


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev_json", type=Path, help="squad-style-data/cmrc2018_dev.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--questions-per-passage", type=int, default=2)
    args = parser.parse_args()
    dev = json.loads(args.dev_json.read_text(encoding="utf-8"))
    passages, questions = derive(dev, args.passages, args.questions_per_passage)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "passages.jsonl", passages)
    write_jsonl(args.out / "questions.jsonl", questions)
    print(f"{len(passages)} passages, {len(questions)} questions -> {args.out}")


if __name__ == "__main__":
    main()
