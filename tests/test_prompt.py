"""tagging.prompt: what the model is asked, built from the same schema the parser enforces.

None of these tests needs the database.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from tagging.captions import SCHEMA, TIME_OF_DAY
from tagging.prompt import (
    FIRST_PASS_KEYS,
    FIRST_PASS_VERSION,
    MAX_KEYWORDS,
    PROMPT_VERSION,
    PhotoContext,
    build_first_pass_prompt,
    build_prompt,
)

AREZZO = PhotoContext(
    taken_at=datetime(2023, 7, 4, 18, 40),
    place="Arezzo, Tuscany, Italy",
    camera="NIKON D70",
    keywords=["tuscany", "piazza grande", "summer"],
    title="Piazza Grande",
    description="The square before the antiques fair",
)

# The prompt text each version stands for. Changing the text without bumping
# PROMPT_VERSION would mix captions of two prompts under one version.
FINGERPRINTS = {
    "caption-v1": ("b8f23bfa0fda", "f59dce44c7a9"),
}
FIRST_PASS_FINGERPRINTS = {
    "first-v1": ("25d57d11969a", "da85113346f8"),
}


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_the_prompt_asks_for_every_schema_key():
    prompt = build_prompt(None)
    for name in SCHEMA:
        assert f'"{name}"' in prompt, name


def test_the_prompt_names_the_time_of_day_choices():
    prompt = build_prompt(None)
    for choice in TIME_OF_DAY:
        assert choice in prompt


def test_the_prompt_asks_for_json_only():
    prompt = build_prompt(None)
    assert "ONE JSON object" in prompt
    assert prompt.endswith("Answer with the JSON object only, nothing else.")


def test_known_context_appears_in_the_prompt_as_hints():
    prompt = build_prompt(AREZZO)
    assert (
        "Taken 4 July 2023 at 18:40 in Arezzo, Tuscany, Italy with a NIKON D70; "
        "existing keywords: tuscany, piazza grande, summer; "
        'title: "Piazza Grande"; description: "The square before the antiques fair".'
    ) in prompt
    assert "what you see wins" in prompt


def test_no_context_means_no_taken_line():
    assert "Taken" not in build_prompt(None)
    assert "Taken" not in build_prompt(PhotoContext())
    assert "Context" not in build_prompt(PhotoContext())
    assert build_prompt(PhotoContext()) == build_prompt(None)


def test_partial_context_says_only_what_is_known():
    prompt = build_prompt(PhotoContext(keywords=["family"]))
    assert "Taken" not in prompt
    assert "Existing keywords: family." in prompt
    prompt = build_prompt(PhotoContext(taken_at=datetime(1999, 12, 31)))
    assert "Taken 31 December 1999." in prompt  # midnight: a date without a known time


def test_context_is_tidied_and_bounded():
    prompt = build_prompt(
        PhotoContext(
            place='Café "Le Dôme",\n Paris',
            keywords=[" a ", "a", ""] + [f"k{i}" for i in range(50)],
            description="word " * 200,
        )
    )
    assert "in Café 'Le Dôme', Paris;" in prompt
    keywords = prompt.split("existing keywords: ")[1].split(";")[0].split(", ")
    assert keywords[0] == "a" and len(keywords) == MAX_KEYWORDS
    assert len(prompt) < len(build_prompt(None)) + 700


def test_the_prompt_stays_short_for_small_context_windows():
    assert len(build_prompt(None)) < 600
    assert len(build_prompt(AREZZO)) < 900


def test_prompt_version_changes_when_the_prompt_does():
    current = (fingerprint(build_prompt(None)), fingerprint(build_prompt(AREZZO)))
    assert FINGERPRINTS.get(PROMPT_VERSION) == current, (
        f"The prompt text changed: bump PROMPT_VERSION and add FINGERPRINTS[<new version>] = {current}"
    )


def test_the_first_pass_asks_only_for_one_sentence_and_a_few_tags_with_the_same_hints():
    prompt = build_first_pass_prompt(AREZZO)
    assert [key for key in SCHEMA if f'"{key}"' in prompt] == list(FIRST_PASS_KEYS) == ["caption", "tags"]
    assert "Taken 4 July 2023 at 18:40 in Arezzo" in prompt and prompt.endswith("nothing else.")
    assert len(build_first_pass_prompt(None)) < len(build_prompt(None)) / 2


def test_first_pass_version_changes_when_its_prompt_does():
    current = (fingerprint(build_first_pass_prompt(None)), fingerprint(build_first_pass_prompt(AREZZO)))
    assert FIRST_PASS_FINGERPRINTS.get(FIRST_PASS_VERSION) == current, (
        f"The first-pass prompt changed: bump FIRST_PASS_VERSION and add FIRST_PASS_FINGERPRINTS[<new>] = {current}"
    )
