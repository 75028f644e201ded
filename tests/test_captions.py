"""tagging.captions: strict about the schema, forgiving about the model.

The broken outputs below are written the way small vision models really
answer: chatty preambles, code fences, Python literals, answers cut off by the
token limit. None of these tests needs the database.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tagging.captions import SCHEMA, TIME_OF_DAY, ParsedCaption, parse_caption
from tests.fake_vlm_server import GOOD_CAPTION, MALFORMED_CAPTION, TRUNCATED_CAPTION


def has_note(parsed: ParsedCaption, *words: str) -> bool:
    return any(all(w in note for w in words) for note in parsed.notes)


def assert_schema_shaped(fields: dict) -> None:
    assert set(fields) <= set(SCHEMA)
    for name, value in fields.items():
        spec = SCHEMA[name]
        if spec.type is list:
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), (name, value)
            assert len(value) <= spec.max_items
            assert all(len(v) <= spec.max_chars for v in value)
        elif spec.type is int:
            assert type(value) is int, (name, value)
        else:
            assert isinstance(value, str), (name, value)
            assert len(value) <= spec.max_chars
    json.dumps(fields, ensure_ascii=False).encode("utf-8")  # storable as JSON (no lone surrogates)


# --- well-formed answers ------------------------------------------------------------------


def test_it_reads_plain_json():
    parsed = parse_caption(GOOD_CAPTION)
    assert parsed.structured
    assert parsed.notes == []
    assert parsed.fields == json.loads(GOOD_CAPTION)


def test_it_reads_json_in_a_code_fence():
    raw = '```json\n{"caption": "Two cups of espresso on a marble table.", "people_count": 0}\n```'
    parsed = parse_caption(raw)
    assert parsed.structured
    assert parsed.fields == {"caption": "Two cups of espresso on a marble table.", "people_count": 0}


def test_it_reads_json_in_an_unclosed_fence():
    raw = '```json\n{"caption": "A lighthouse on a cliff.", "scene": "coast"}\n'
    assert parse_caption(raw).fields == {"caption": "A lighthouse on a cliff.", "scene": "coast"}


def test_it_ignores_text_before_and_after_the_json_and_says_so():
    raw = (
        "Here is a description of the image in JSON format:\n\n"
        '{"caption": "A red tram crosses a bridge in the rain.", "time_of_day": "afternoon"}\n\n'
        "I hope this helps! Let me know if you want more detail."
    )
    parsed = parse_caption(raw)
    assert parsed.structured
    assert parsed.fields == {"caption": "A red tram crosses a bridge in the rain.", "time_of_day": "afternoon"}
    assert has_note(parsed, "before the JSON")
    assert has_note(parsed, "after the JSON")


def test_it_removes_special_tokens_left_by_the_runtime():
    raw = '{"caption": "A snowy mountain hut."}<end_of_utterance><|im_end|>'
    parsed = parse_caption(raw)
    assert parsed.fields == {"caption": "A snowy mountain hut."}
    assert has_note(parsed, "special tokens")


# --- malformed answers --------------------------------------------------------------------


def test_it_repairs_python_style_dicts_with_single_quotes_and_trailing_commas():
    parsed = parse_caption(MALFORMED_CAPTION)
    assert parsed.structured
    assert parsed.fields == {
        "caption": "A dog running on a beach.",
        "people_count": 0,
        "scene": "beach",
        "time_of_day": "evening",
        "tags": ["dog", "beach", "sunset"],
    }
    assert has_note(parsed, "repaired malformed JSON", "single quotes")
    assert has_note(parsed, "trailing commas")
    assert has_note(parsed, "dropped unknown key 'is_cute'")
    assert has_note(parsed, "renamed key 'keywords' to 'tags'")


def test_it_keeps_an_apostrophe_inside_a_single_quoted_string():
    parsed = parse_caption("{'caption': 'A child's kite over the dunes.', 'people_count': 1}")
    assert parsed.fields == {"caption": "A child's kite over the dunes.", "people_count": 1}


def test_it_reads_python_true_and_none():
    parsed = parse_caption("{'caption': 'An empty platform.', 'visible_text': None, 'people_count': 0, 'dark': False}")
    assert parsed.fields == {"caption": "An empty platform.", "people_count": 0, "visible_text": ""}
    assert has_note(parsed, "Python-style literals")


def test_it_keeps_unescaped_quotes_inside_a_string():
    parsed = parse_caption('{"caption": "A shop sign reading "OPEN" above a green door.", "visible_text": "OPEN"}')
    assert parsed.fields == {"caption": 'A shop sign reading "OPEN" above a green door.', "visible_text": "OPEN"}
    assert has_note(parsed, "unescaped quotes")


def test_it_repairs_missing_commas_between_lines():
    raw = '{\n  "caption": "A fishing boat at anchor."\n  "scene": "harbour"\n  "tags": ["boat", "harbour"]\n}'
    parsed = parse_caption(raw)
    assert parsed.fields == {"caption": "A fishing boat at anchor.", "scene": "harbour", "tags": ["boat", "harbour"]}
    assert has_note(parsed, "missing commas")


def test_it_reads_unquoted_keys_and_values():
    parsed = parse_caption("{caption: A tabby cat asleep on a windowsill, people_count: 0, time_of_day: morning}")
    assert parsed.fields == {
        "caption": "A tabby cat asleep on a windowsill",
        "people_count": 0,
        "time_of_day": "morning",
    }


def test_it_reads_raw_newlines_inside_strings():
    parsed = parse_caption('{"caption": "A market stall.", "visible_text": "FRESH FISH\nOPEN DAILY"}')
    assert parsed.fields["visible_text"] == "FRESH FISH\nOPEN DAILY"


def test_it_unwraps_an_object_nested_under_one_key():
    parsed = parse_caption('{"image_analysis": {"caption": "A kayak on a still lake.", "scene": "lake"}}')
    assert parsed.fields == {"caption": "A kayak on a still lake.", "scene": "lake"}
    assert has_note(parsed, "unwrapped")


# --- truncated answers (the model hit max_tokens) -------------------------------------------


def test_it_repairs_json_cut_off_inside_a_list_and_keeps_the_complete_items():
    parsed = parse_caption(TRUNCATED_CAPTION)
    assert parsed.structured
    assert parsed.fields == {
        "caption": "A man rides a red bicycle past a café.",
        "main_subject": "cyclist",
        "objects": ["bicycle", "café", "tables"],
    }
    assert has_note(parsed, "repaired truncated JSON")


def test_it_keeps_a_cut_off_description_up_to_its_last_whole_word():
    raw = (
        '{"caption": "Fog over a vineyard at dawn.", "description": "Rows of vines climb a gentle hill. '
        'Fog fills the valley below while the first light catches the tops of the cypr'
    )
    parsed = parse_caption(raw)
    assert parsed.fields["caption"] == "Fog over a vineyard at dawn."
    assert parsed.fields["description"] == (
        "Rows of vines climb a gentle hill. Fog fills the valley below while the first light catches the tops of the"
    )
    assert has_note(parsed, "repaired truncated JSON")


def test_it_drops_a_key_whose_value_was_cut_off_before_it_began():
    parsed = parse_caption('{"caption": "A lone heron in the reeds.", "people_count": 0, "tags": ')
    assert parsed.fields == {"caption": "A lone heron in the reeds.", "people_count": 0}
    assert has_note(parsed, "repaired truncated JSON")


def test_it_drops_a_number_cut_off_at_the_end():
    # "1" may have been the start of "12": it is not kept.
    parsed = parse_caption('{"caption": "A crowd at a concert.", "people_count": 1')
    assert parsed.fields == {"caption": "A crowd at a concert."}


def test_it_repairs_truncation_inside_a_code_fence():
    raw = '```json\n{"caption": "Children play in a fountain.", "activities": ["playing", "splash'
    parsed = parse_caption(raw)
    assert parsed.fields == {"caption": "Children play in a fountain.", "activities": ["playing"]}


def test_it_repairs_truncation_after_an_escape():
    parsed = parse_caption('{"caption": "A sign: \\"Keep out\\"", "visible_text": "Keep \\')
    assert parsed.fields["caption"] == 'A sign: "Keep out"'
    assert parsed.fields["visible_text"] == "Keep"


# --- keys ----------------------------------------------------------------------------------


def test_it_maps_other_case_and_synonyms_onto_the_schema_and_notes_them():
    raw = json.dumps(
        {
            "Caption": "A bride and groom under an arch of roses.",
            "subject": "wedding couple",
            "people": 2,
            "Keywords": ["wedding", "roses"],
            "Visible Text": "",
            "timeOfDay": "afternoon",
        }
    )
    parsed = parse_caption(raw)
    assert parsed.fields == {
        "caption": "A bride and groom under an arch of roses.",
        "main_subject": "wedding couple",
        "people_count": 2,
        "time_of_day": "afternoon",
        "visible_text": "",
        "tags": ["wedding", "roses"],
    }
    renamed = [("Caption", "caption"), ("subject", "main_subject"), ("people", "people_count"), ("Keywords", "tags")]
    for old, new in renamed:
        assert has_note(parsed, f"renamed key '{old}' to '{new}'")


def test_the_exact_key_wins_over_a_synonym():
    parsed = parse_caption('{"keywords": ["old"], "tags": ["new"]}')
    assert parsed.fields["tags"] == ["new"]
    assert has_note(parsed, "'keywords'", "already given")


def test_it_drops_unknown_keys_with_a_note():
    parsed = parse_caption('{"caption": "A bowl of ramen.", "confidence": 0.93, "colors": ["red"]}')
    assert parsed.fields == {"caption": "A bowl of ramen."}
    assert has_note(parsed, "dropped unknown keys", "'confidence'", "'colors'")


def test_it_lists_the_keys_the_model_left_out():
    parsed = parse_caption('{"caption": "A bowl of ramen."}')
    assert has_note(parsed, "missing:", "description", "tags")


def test_json_without_any_schema_key_is_not_structured():
    parsed = parse_caption('{"answer": 42}')
    assert not parsed.structured
    assert parsed.fields == {}
    assert has_note(parsed, "no caption fields")


# --- types ---------------------------------------------------------------------------------


def test_people_count_words_and_digit_strings_become_integers():
    for value, expected in [("two", 2), ("2", 2), ("3 people", 3), ("none", 0), ("One person", 1), (4.0, 4)]:
        parsed = parse_caption(json.dumps({"people_count": value}))
        assert parsed.fields == {"people_count": expected}, value


def test_ambiguous_people_counts_are_dropped_with_a_note():
    for value in ["several", "about 5", "5-6", -1, True, 2.5, ["a man", "a woman"], ""]:
        parsed = parse_caption(json.dumps({"caption": "x", "people_count": value}))
        assert "people_count" not in parsed.fields, value
        assert has_note(parsed, "dropped 'people_count'"), value


def test_a_comma_separated_tags_string_becomes_a_list():
    parsed = parse_caption('{"tags": "Beach, Sunset; Dog\\n#Summer"}')
    assert parsed.fields == {"tags": ["beach", "sunset", "dog", "summer"]}
    assert has_note(parsed, "split the text in 'tags'")


def test_tags_are_lowercased_stripped_deduplicated_and_capped():
    tags = ["  Dog ", "dog", "DOG", "Beach"] + [f"tag{i}" for i in range(20)] + ["x" * 51]
    parsed = parse_caption(json.dumps({"tags": tags}))
    assert parsed.fields["tags"][:3] == ["dog", "beach", "tag0"]
    assert len(parsed.fields["tags"]) == 15
    assert has_note(parsed, "longer than 50")
    assert has_note(parsed, "kept the first 15")


def test_object_lists_of_dicts_keep_their_names():
    parsed = parse_caption('{"objects": [{"name": "bicycle", "count": 2}, {"label": "lamp post"}, 7, null]}')
    assert parsed.fields["objects"] == ["bicycle", "lamp post", "7"]
    assert has_note(parsed, "not text")


def test_a_list_for_a_text_field_is_joined():
    parsed = parse_caption('{"scene": ["beach", "boardwalk"], "visible_text": ["STOP", "Main St"]}')
    assert parsed.fields == {"scene": "beach, boardwalk", "visible_text": "STOP\nMain St"}


def test_wrong_types_that_cannot_be_coerced_are_dropped():
    parsed = parse_caption('{"caption": {"text": "x"}, "objects": 5, "scene": true, "description": null}')
    assert parsed.fields == {}
    for name in ("caption", "objects", "scene", "description"):
        assert has_note(parsed, f"dropped '{name}'")


def test_time_of_day_is_one_of_its_choices():
    readings = [("Evening", "evening"), ("sunset", "evening"), ("in the early morning", "morning"), ("night.", "night")]
    for value, expected in readings:
        assert parse_caption(json.dumps({"time_of_day": value})).fields == {"time_of_day": expected}, value
    parsed = parse_caption(json.dumps({"caption": "x", "time_of_day": "daytime"}))
    assert "time_of_day" not in parsed.fields
    assert has_note(parsed, "not one of")


def test_visible_text_saying_none_means_no_text():
    for value in ["None", "no text", "N/A", None]:
        assert parse_caption(json.dumps({"visible_text": value})).fields == {"visible_text": ""}


def test_every_text_field_is_capped():
    long = "word " * 1000
    text_fields = [name for name, spec in SCHEMA.items() if spec.type is str and not spec.choices]
    parsed = parse_caption(json.dumps({name: long for name in text_fields}))
    for name, value in parsed.fields.items():
        assert len(value) <= SCHEMA[name].max_chars
    assert has_note(parsed, "shortened 'description'")


def test_control_characters_and_lone_surrogates_are_removed():
    parsed = parse_caption('{"caption": "A cat\\u0000 on a mat\\ud800.", "tags": ["a\\u0007b"]}')
    assert parsed.fields == {"caption": "A cat on a mat.", "tags": ["ab"]}


# --- no JSON at all ------------------------------------------------------------------------


def test_prose_becomes_caption_and_description():
    raw = (
        "The image shows an old stone bridge over a narrow river. Ivy covers the arches, "
        "and a rowing boat is tied to a post. The light suggests late afternoon."
    )
    parsed = parse_caption(raw)
    assert not parsed.structured
    assert parsed.fields == {
        "caption": "The image shows an old stone bridge over a narrow river.",
        "description": raw,
    }
    assert parsed.notes == ["model answered in prose"]


def test_braces_inside_prose_do_not_make_it_json():
    raw = "A neon sign shows {OPEN 24H} above a diner door on a wet night street."
    parsed = parse_caption(raw)
    assert not parsed.structured
    assert parsed.fields["caption"] == raw


def test_empty_output_gives_no_fields():
    for raw in ["", "   \n", None, "<end_of_utterance>"]:
        parsed = parse_caption(raw)
        assert parsed == ParsedCaption({}, False, parsed.notes)
        assert has_note(parsed, "empty model output")


# --- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
caption_like = st.dictionaries(
    st.sampled_from([*SCHEMA, "People", "keywords", "subject", "extra"]), json_values, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_it_never_raises_on_arbitrary_text(raw):
    parsed = parse_caption(raw)
    assert isinstance(parsed.structured, bool)
    assert all(isinstance(note, str) for note in parsed.notes)
    assert_schema_shaped(parsed.fields)


@settings(max_examples=300, deadline=None)
@given(caption_like, st.data())
def test_it_never_raises_on_json_cut_at_any_point(obj, data):
    text = json.dumps(obj)
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    style = data.draw(st.sampled_from(["json", "python", "fenced"]))
    if style == "python":
        text = repr(obj)
    elif style == "fenced":
        text = f"Sure:\n```json\n{text}\n```"
    assert_schema_shaped(parse_caption(text[:cut]).fields)


@settings(max_examples=200, deadline=None)
@given(caption_like)
def test_complete_json_is_structured_exactly_when_it_yields_fields(obj):
    parsed = parse_caption(json.dumps(obj))
    assert_schema_shaped(parsed.fields)
    assert parsed.structured == bool(parsed.fields)


def test_time_of_day_choices_are_in_the_schema():
    assert SCHEMA["time_of_day"].choices == TIME_OF_DAY


def test_a_first_pass_answer_is_missing_only_what_it_was_asked_for():
    answer = '{"caption": "A dog on a beach.", "tags": ["dog", "beach"]}'
    first = parse_caption(answer, asked=("caption", "tags"))
    assert first.fields == {"caption": "A dog on a beach.", "tags": ["dog", "beach"]} and first.structured
    assert not any(note.startswith("missing") for note in first.notes)
    assert has_note(parse_caption('{"caption": "A dog."}', asked=("caption", "tags")), "missing: tags")
    assert has_note(parse_caption(answer), "missing: description")
