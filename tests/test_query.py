"""tagging.query: the search box parser. Pure Python; none of these tests needs the database."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tagging.query import (
    FILTER_KEYS,
    HAS_VALUES,
    MAX_ERRORS,
    SEMANTIC_FIELDS,
    DateRange,
    ParsedQuery,
    parse_query,
)

KNOWN = "known filters: after:, before:, camera:, folder:, has:, library:, person:, place:, tag:"
FORMATS = "(use YYYY, YYYY-MM or YYYY-MM-DD)"


def semantics(q: ParsedQuery) -> dict:
    return {name: getattr(q, name) for name in SEMANTIC_FIELDS}


def assert_round_trips(q: ParsedQuery) -> None:
    canonical = q.unparse()
    # Canonical text can be longer than what was typed (quotes are added), so it gets the room it needs.
    again = parse_query(canonical, max_length=max(500, len(canonical)))
    assert semantics(again) == semantics(q), canonical


# Free text


def test_it_normalises_the_free_text_whitespace():
    q = parse_query("  sunset \t over\n the   sea ")
    assert q.text == "sunset over the sea"
    assert not q.has_filters and not q.errors


def test_an_empty_query_is_empty():
    for text in ("", "   ", "\x00\x01", "-", " - -- ", '""', None):
        q = parse_query(text)
        assert q.is_empty, text
        assert q.text == "" and not q.has_filters


def test_quotes_group_words_but_are_not_kept_in_the_text():
    q = parse_query('"red  car" parked')
    assert q.text == "red car parked"


def test_typographic_quotes_work_like_straight_ones():
    q = parse_query("camera:“canon eos 40d” „1984”")
    assert q.cameras == ["canon eos 40d"]
    assert q.text == "1984" and q.dates == []


def test_a_leading_dash_excludes_a_word_from_the_full_text():
    q = parse_query("beach -dog -Dog -\"hot dog\" sea")
    assert q.text == "beach sea"
    assert q.exclude_words == ["dog", "hot dog"]
    assert q.has_filters and not q.is_empty


def test_a_quoted_dash_word_is_text():
    assert parse_query('"-dog"').text == "-dog"


def test_words_made_of_dashes_are_dropped():
    q = parse_query('a - b -- c "d - e" -"-" -"f -- g"')
    assert q.text == "a b c d e"
    assert q.exclude_words == ["f g"]
    assert not q.errors


def test_urls_and_times_are_text_not_filters():
    q = parse_query("http://example.com/x 12:30 C:\\photos Re: x-y")
    assert q.text == "http://example.com/x 12:30 C:\\photos Re: x-y"
    assert not q.errors and not q.has_filters


# Dates


def test_a_bare_year_is_that_year():
    q = parse_query("beach 2023")
    assert q.dates == [DateRange(date(2023, 1, 1), date(2024, 1, 1))]
    assert q.text == "beach"


def test_a_bare_month_is_that_month():
    assert parse_query("2023-07").dates == [DateRange(date(2023, 7, 1), date(2023, 8, 1))]
    assert parse_query("2023-12").dates == [DateRange(date(2023, 12, 1), date(2024, 1, 1))]


def test_a_bare_day_is_that_day():
    assert parse_query("2023-07-04").dates == [DateRange(date(2023, 7, 4), date(2023, 7, 5))]


def test_days_at_month_and_year_ends_end_on_the_next_day():
    assert parse_query("2023-01-31").dates == [DateRange(date(2023, 1, 31), date(2023, 2, 1))]
    assert parse_query("2023-12-31").dates == [DateRange(date(2023, 12, 31), date(2024, 1, 1))]
    assert parse_query("2023-04-31").errors == [f"2023-04-31 is not a date {FORMATS}"]


def test_february_29_is_a_date_only_in_leap_years():
    assert parse_query("2024-02-29").dates == [DateRange(date(2024, 2, 29), date(2024, 3, 1))]
    assert parse_query("2000-02-29").dates == [DateRange.day(date(2000, 2, 29))]
    q = parse_query("2023-02-29")
    assert q.dates == []
    assert q.errors == [f"2023-02-29 is not a date {FORMATS}"]
    assert q.text == "2023-02-29"  # kept as text so the search still runs
    assert parse_query("1900-02-29").errors == [f"1900-02-29 is not a date {FORMATS}"]


def test_several_bare_dates_are_alternatives_and_repeats_collapse():
    q = parse_query("2019 2021-07 2019")
    assert q.dates == [DateRange.year(2019), DateRange.month(2021, 7)]


def test_years_only_between_1800_and_2200_are_dates():
    assert parse_query("1800").dates == [DateRange.year(1800)]
    assert parse_query("2200").dates == [DateRange.year(2200)]
    for number in ("1799", "2201", "0042", "9999", "1234-56-78"):
        q = parse_query(number)
        assert q.dates == [] and q.text == number and not q.errors, number


def test_numbers_that_only_look_like_years_are_text():
    fullwidth, arabic_indic = "２０２３", "٢٠٢٣"
    for text in ("20231", "202", "2023-7", "2023-07-4", "2023-07-04T10", "2023/07", "x2023", fullwidth, arabic_indic):
        q = parse_query(text)
        assert q.dates == [] and q.text == text and not q.errors, text


def test_a_quoted_year_is_text():
    q = parse_query('"1984" orwell')
    assert q.dates == [] and q.text == "1984 orwell"


def test_after_means_on_or_after_the_start_of_the_period():
    assert parse_query("after:2022-05-01").after == date(2022, 5, 1)
    assert parse_query("after:2022-05").after == date(2022, 5, 1)
    assert parse_query("after:2022").after == date(2022, 1, 1)


def test_before_means_before_the_start_of_the_period():
    assert parse_query("before:2024").before == date(2024, 1, 1)
    assert parse_query("before:2024-02").before == date(2024, 2, 1)
    assert parse_query("before:2024-02-29").before == date(2024, 2, 29)


def test_after_and_before_accept_quotes_and_any_real_year():
    assert parse_query('after:"2020"').after == date(2020, 1, 1)
    assert parse_query("after:1066").after == date(1066, 1, 1)
    assert parse_query("before:9999-12-31").before == date(9999, 12, 31)


def test_repeated_after_and_before_narrow_to_the_tightest():
    q = parse_query("after:2020 after:2022-03 before:2024 before:2023-06-01")
    assert q.after == date(2022, 3, 1)
    assert q.before == date(2023, 6, 1)
    assert not q.errors


def test_a_malformed_date_filter_is_reported_and_dropped():
    q = parse_query("after:2023-13-01 before:yesterday after:2023-02-29 after:0000 beach")
    assert q.errors == [
        f"after: 2023-13-01 is not a date {FORMATS}",
        f"before: yesterday is not a date {FORMATS}",
        f"after: 2023-02-29 is not a date {FORMATS}",
        f"after: 0000 is not a date {FORMATS}",
    ]
    assert q.after is None and q.before is None
    assert q.text == "beach"


def test_a_date_filter_without_a_value_is_reported():
    q = parse_query("after: 2020")
    assert q.errors == [f"after: needs a date {FORMATS}"]
    assert q.after is None
    assert q.dates == [DateRange.year(2020)]  # the next token is read on its own
    assert parse_query('before:""').errors == [f"before: needs a date {FORMATS}"]


def test_after_a_later_start_than_before_is_a_conflict():
    q = parse_query("after:2024 before:2020")
    assert q.errors == ["nothing can be after 2024 and before 2020"]
    assert (q.after, q.before) == (date(2024, 1, 1), date(2020, 1, 1))
    assert parse_query("after:2024-03 before:2024-03").errors == ["nothing can be after 2024-03 and before 2024-03"]
    assert parse_query("after:2024-03-01 before:2024-03-02").errors == []


def test_a_date_cannot_be_negated():
    q = parse_query("-2023 beach")
    assert q.errors == ["a date can't be excluded — “-2023” was ignored (use before: or after:)"]
    assert q.dates == [] and q.exclude_words == [] and q.text == "beach"


# Filters


def test_camera_place_library_and_folder_values():
    q = parse_query("camera:nikon place:arezzo library:Family folder:2019/summer")
    assert q.cameras == ["nikon"]
    assert q.places == ["arezzo"]
    assert q.libraries == ["Family"]
    assert q.folders == ["2019/summer"]
    assert q.text == "" and q.has_filters and not q.is_empty


def test_quoted_values_keep_their_spaces_normalised():
    q = parse_query('camera:"canon  eos 40d" place:"new york" sunset')
    assert q.cameras == ["canon eos 40d"]
    assert q.places == ["new york"]
    assert q.text == "sunset"


def test_keys_are_case_insensitive_and_values_keep_their_case():
    q = parse_query("Camera:Nikon PLACE:Arezzo Tag:Beach -TAG:People HAS:GPS")
    assert q.cameras == ["Nikon"]
    assert q.places == ["Arezzo"]
    assert q.tags == ["Beach"]
    assert q.exclude_tags == ["People"]
    assert q.has == {"gps"}


def test_repeated_cameras_places_libraries_and_folders_are_alternatives():
    q = parse_query("camera:nikon camera:canon place:rome place:paris library:A library:B folder:x folder:y")
    assert q.cameras == ["nikon", "canon"]
    assert q.places == ["rome", "paris"]
    assert q.libraries == ["A", "B"]
    assert q.folders == ["x", "y"]


def test_repeated_values_collapse_ignoring_case():
    q = parse_query("camera:Nikon camera:nikon tag:beach tag:BEACH -tag:x -tag:X")
    assert q.cameras == ["Nikon"] and q.tags == ["beach"] and q.exclude_tags == ["x"]


def test_tags_are_all_required_and_negated_tags_excluded():
    q = parse_query("tag:beach tag:sunset -tag:people")
    assert q.tags == ["beach", "sunset"]
    assert q.exclude_tags == ["people"]


def test_a_tag_both_required_and_excluded_is_a_conflict():
    q = parse_query("tag:beach -tag:Beach")
    assert q.errors == ["nothing can be tagged “beach” and not tagged “beach”"]


def test_folder_drops_surrounding_slashes():
    assert parse_query("folder:/2019/summer/").folders == ["2019/summer"]
    q = parse_query("folder:/")
    assert q.folders == []
    assert q.errors == ["folder: needs a value, like folder:2019/summer (no space after the colon)"]


def test_has_accepts_its_four_values():
    q = parse_query("has:gps has:caption has:Embedding has:keywords has:gps")
    assert q.has == {"gps", "caption", "embedding", "keywords"}
    assert not q.errors


def test_has_rejects_other_values():
    q = parse_query("has:unicorns")
    assert q.has == set()
    assert q.errors == [
        "has: “unicorns” is not known — use has:caption, has:embedding, has:faces, has:gps, has:keywords or has:text"
    ]


def test_filters_without_a_value_are_reported():
    q = parse_query("camera: nikon tag: -tag: place:\"\" library: has:")
    assert q.errors == [
        "camera: needs a value, like camera:nikon (no space after the colon)",
        "tag: needs a value, like tag:beach (no space after the colon)",
        "-tag: needs a value, like tag:beach (no space after the colon)",
        'place: needs a value, like place:"new york" (no space after the colon)',
        "library: needs a value, like library:Family (no space after the colon)",
        "has: needs a value, like has:gps (no space after the colon) — use has:caption, has:embedding, "
        "has:faces, has:gps, has:keywords or has:text",
    ]
    assert q.text == "nikon"
    assert not q.cameras and not q.tags and not q.exclude_tags and not q.places and not q.libraries and not q.has


def test_only_tags_can_be_negated():
    q = parse_query("-camera:nikon -has:gps beach")
    assert q.errors == [
        "only tag: can be negated — “-camera:nikon” was ignored",
        "only tag: can be negated — “-has:gps” was ignored",
    ]
    assert q.cameras == [] and q.has == set() and q.exclude_words == [] and q.text == "beach"


def test_an_unknown_filter_is_reported_and_kept_as_text():
    q = parse_query("foo:bar beach")
    assert q.errors == [f"unknown filter “foo:” — {KNOWN}"]
    assert q.text == "foo:bar beach"
    assert not q.has_filters


def test_an_unknown_filter_close_to_a_known_one_gets_a_suggestion():
    q = parse_query("cmera:nikon")
    assert q.errors == [f"unknown filter “cmera:” — {KNOWN}; did you mean “camera:”?"]
    assert q.text == "cmera:nikon"


def test_a_quoted_filter_is_text():
    q = parse_query('"after:2020" "tag:beach"')
    assert q.text == "after:2020 tag:beach"
    assert q.after is None and q.tags == [] and not q.errors


def test_everything_combines_in_any_order():
    q = parse_query('-tag:people kids 2023-07 camera:"canon eos 40d" at the beach has:gps after:2023-07-02 -dog')
    assert q.text == "kids at the beach"
    assert q.exclude_words == ["dog"]
    assert q.dates == [DateRange.month(2023, 7)]
    assert q.after == date(2023, 7, 2)
    assert q.cameras == ["canon eos 40d"]
    assert q.exclude_tags == ["people"]
    assert q.has == {"gps"}
    assert q.errors == []


# Robustness


def test_an_unclosed_quote_reads_to_the_end_with_a_note():
    q = parse_query('sunset camera:"canon eos 40d')
    assert q.cameras == ["canon eos 40d"]
    assert q.text == "sunset"
    assert q.errors == ["unclosed quote: “canon eos 40d” was read as quoted up to the end of the query"]
    assert parse_query('beach "').errors == ["a lone quote at the end of the query was ignored"]


def test_a_long_query_is_cut_with_a_note():
    q = parse_query("word " * 200)
    assert q.errors == ["the query was cut to 500 characters"]
    assert q.text == " ".join(["word"] * 100)
    assert parse_query("a" * 20, max_length=10).text == "a" * 10
    assert parse_query("x" * 10_000_000).text == "x" * 500


def test_control_characters_are_removed_and_line_breaks_separate_words():
    q = parse_query("sun\x00set\nbeach\ttag:a\x1bb \u202eevil")
    assert q.text == "sunset beach evil"
    assert q.tags == ["ab"]


def test_unicode_text_and_values_are_kept_and_nfc_normalised():
    q = parse_query('café place:"São Paulo" tag:海 🏖️ cafe\u0301')
    assert q.text == "café 🏖️ café"
    assert q.places == ["São Paulo"]
    assert q.tags == ["海"]


def test_none_reads_as_an_empty_query():
    assert parse_query(None).is_empty


def test_errors_are_capped():
    q = parse_query(" ".join(f"after:bad{i}" for i in range(30)))
    assert len(q.errors) == MAX_ERRORS
    assert q.errors[-1] == f"… and {30 - MAX_ERRORS + 1} more problems"


# describe() and unparse()


def test_describe_gives_one_chip_per_filter():
    q = parse_query(
        'sunset 2023 2024-07-04 after:2022-05-02 before:2025 camera:nikon place:"new york" library:Family '
        "folder:2019/summer tag:beach -tag:people has:gps has:caption -dog"
    )
    assert q.describe() == [
        "2023",
        "2024-07-04",
        "after: 2022-05-02",
        "before: 2025",
        "camera: nikon",
        "place: new york",
        "library: Family",
        "folder: 2019/summer",
        "tag: beach",
        "not tag: people",
        "has: caption",
        "has: gps",
        "not: dog",
    ]


def test_dates_are_described_as_short_as_they_can_be():
    q = parse_query("after:2022-05-01 before:2024-01-01")
    assert q.describe() == ["after: 2022-05", "before: 2024"]
    assert q.unparse() == "after:2022-05 before:2024"


def test_unparse_writes_canonical_text():
    q = parse_query('Camera:"canon  eos" "1984" foo:bar -"after:x" 2023-07 after:2024-01-01 TAG:a -tag:b has:gps beach')
    assert q.unparse() == (
        '"1984" "foo:bar" beach -"after:x" 2023-07 after:2024 camera:"canon eos" tag:a -tag:b has:gps'
    )
    assert_round_trips(q)


def test_unparse_of_an_empty_query_is_empty():
    assert ParsedQuery().unparse() == ""


def test_unparse_refuses_what_no_query_can_say():
    with pytest.raises(ValueError):
        ParsedQuery(dates=[DateRange(date(2023, 1, 1), None)]).unparse()
    with pytest.raises(ValueError):
        ParsedQuery(dates=[DateRange(date(2023, 1, 3), date(2023, 1, 9))]).unparse()
    with pytest.raises(ValueError):
        ParsedQuery(cameras=['say "cheese"']).unparse()
    with pytest.raises(ValueError):
        ParsedQuery(tags=[""]).unparse()


def test_date_range_tokens():
    assert DateRange.year(2023).token() == "2023"
    assert DateRange.month(2023, 1).token() == "2023-01"
    assert DateRange.day(date(2023, 1, 1)).token() == "2023-01-01"
    with pytest.raises(ValueError):
        DateRange.year(1500).token()  # would read back as text


# Properties (hypothesis)


def check_types(q: ParsedQuery) -> None:
    assert isinstance(q.text, str)
    assert q.text == " ".join(q.text.split())
    for name in ("exclude_words", "cameras", "places", "libraries", "folders", "tags", "exclude_tags", "errors"):
        values = getattr(q, name)
        assert isinstance(values, list) and all(isinstance(v, str) and v for v in values), name
    for name in ("exclude_words", "cameras", "places", "libraries", "folders", "tags", "exclude_tags"):
        for value in getattr(q, name):
            assert '"' not in value and value == " ".join(value.split()), (name, value)
            assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value), (name, value)
    assert isinstance(q.has, set) and q.has <= HAS_VALUES
    assert all(isinstance(r, DateRange) and isinstance(r.start, date) and isinstance(r.end, date) for r in q.dates)
    assert q.after is None or isinstance(q.after, date)
    assert q.before is None or isinstance(q.before, date)
    assert len(q.errors) <= MAX_ERRORS
    assert isinstance(q.describe(), list)
    fields = dataclasses.asdict(q)
    fields["has"] = sorted(fields["has"])
    json.dumps(fields, default=date.isoformat)


# Text that leans on the syntax: quotes, dashes, colons, keys and digits.
syntax_heavy = st.text(
    alphabet=st.one_of(st.sampled_from(['"', "-", ":", " ", "/", "0", "2", "1", "9", "“", "\n"]), st.characters()),
    max_size=60,
) | st.lists(
    st.sampled_from([*(f"{k}:" for k in FILTER_KEYS), "-", '"', "2023", "-02-29", "x", " ", "Tag:", "foo:", "http:"]),
    max_size=12,
).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), syntax_heavy))
def test_it_never_raises_and_returns_fields_of_the_right_types(text):
    q = parse_query(text)
    check_types(q)
    assert_round_trips(q)  # whatever was typed, the canonical text means the same


words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=8) | st.sampled_from(
    ["beach", "Sunset", "1984", "café", "12:30", "http://x.org/a"]
)
values = st.text(
    alphabet=st.characters(categories=["L", "N", "Zs", "P"], exclude_characters='"“”„＂'), min_size=1
).filter(lambda v: " ".join(v.split()).strip("/ "))  # folder: drops surrounding slashes


def period_text(d: date, precision: str) -> str:
    return {"year": f"{d.year:04d}", "month": f"{d.year:04d}-{d.month:02d}", "day": d.isoformat()}[precision]


def quoted(value: str) -> str:
    return f'"{value}"'


pieces = st.one_of(
    words,
    words.filter(lambda w: not re.fullmatch("[0-9]{4}", w)).map(lambda w: "-" + w),  # -2023 is an error
    words.map(lambda w: "-" + quoted(w)),
    words.map(quoted),
    st.builds(period_text, st.dates(date(1800, 1, 1), date(2200, 12, 31)), st.sampled_from(["year", "month", "day"])),
    st.builds(
        lambda key, d, p: f"{key}:{period_text(d, p)}",
        st.sampled_from(["after", "before", "After", "BEFORE"]),
        st.dates(date(1, 1, 1)),
        st.sampled_from(["year", "month", "day"]),
    ),
    st.builds(
        lambda key, v: f"{key}:{quoted(v)}",
        st.sampled_from(["camera", "place", "library", "folder", "tag", "-tag", "Camera", "-TAG"]),
        values,
    ),
    st.sampled_from(sorted(HAS_VALUES)).map(lambda v: f"has:{v}"),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=10))
def test_valid_pieces_round_trip_through_unparse(parts):
    q = parse_query(" ".join(parts), max_length=10_000)
    # Valid pieces can only conflict with each other (after > before, tag and -tag).
    assert all(e.startswith("nothing can be") for e in q.errors), q.errors
    assert_round_trips(q)
    assert q.describe() == parse_query(q.unparse(), max_length=10_000).describe()


def is_date(value: str) -> bool:
    """An oracle independent of the parser: YYYY, YYYY-MM or YYYY-MM-DD naming a real day."""
    value = " ".join(value.split())
    if not re.fullmatch(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?", value):
        return False
    try:
        date.fromisoformat((value + "-01-01")[:10])
    except ValueError:
        return False
    return True


# No control characters (removed before parsing) and no quotes (syntax).
garbage = st.text(
    alphabet=st.characters(
        exclude_categories=["Cc", "Cs"],
        exclude_characters='"“”„＂\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069',
    ),
    max_size=30,
) | st.sampled_from(["2023-13-01", "2023-02-29", "0000", "2023-7", " 20231", "yesterday", "2023-00", "gps!", "GPS "])


@settings(max_examples=300)
@given(key=st.sampled_from(["after", "before", "has", "After", "HAS"]), value=garbage)
def test_garbage_filter_values_always_produce_an_error(key, value):
    normalised = " ".join(value.split())
    assume(not (key.lower() == "has" and normalised.lower() in HAS_VALUES))
    assume(not (key.lower() in ("after", "before") and is_date(value)))
    q = parse_query(f'{key}:"{value}"')
    assert any(key.lower() + ":" in e for e in q.errors), q.errors
    assert q.after is None and q.before is None and q.has == set()
