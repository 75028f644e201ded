"""Tags (tagging.tags): the vocabulary, where tags come from, sticky decisions, merge and rename, owner captions."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from io import StringIO

import pytest
from django.core.management import call_command

from tagging import documents, search, tags
from tagging.models import Caption, OwnerCaption, PhotoTag, Tag, TagAlias, TagDecision
from tests.factories import make_photo

pytestmark = pytest.mark.django_db
UTC = timezone.utc


@pytest.fixture
def photos(library):
    return [make_photo(library, f"t{i}.jpg", taken=datetime(2022, 5, 1 + i, tzinfo=UTC)) for i in range(4)]


def states(photo):
    return {pt.tag.path: pt.state for pt in PhotoTag.objects.filter(photo=photo).select_related("tag")}


# -- the vocabulary ----------------------------------------------------------------------


def test_file_keywords_become_accepted_tags_with_their_hierarchy(library):
    photo = make_photo(library, "k.jpg", taken=datetime(2020, 1, 1, tzinfo=UTC),
                       keywords=["Places|Italy|Rome", "beach", "Family/Anna"])
    assert tags.import_file_keywords([photo.pk]) == 3
    assert states(photo) == {"Places/Italy/Rome": "accepted", "beach": "accepted", "Family/Anna": "accepted"}
    rome = Tag.objects.get(path="Places/Italy/Rome")
    assert rome.parent.path == "Places/Italy" and rome.parent.parent.path == "Places"
    assert PhotoTag.objects.get(photo=photo, tag=rome).source == "file"
    assert tags.import_file_keywords([photo.pk]) == 0, "a rescan adds nothing twice"


def test_a_photo_tagged_with_a_child_is_found_by_its_parents(library):
    rome = make_photo(library, "rome.jpg", taken=datetime(2020, 1, 1, tzinfo=UTC), keywords=["Places|Italy|Rome"])
    paris = make_photo(library, "paris.jpg", taken=datetime(2020, 1, 2, tzinfo=UTC), keywords=["Places|France|Paris"])
    tags.import_file_keywords([rome.pk, paris.pk])
    found = lambda q: {r.photo.pk for r in search.search(q).results}  # noqa: E731
    assert found("tag:italy") == {rome.pk}
    assert found("tag:places") == {rome.pk, paris.pk}
    assert found("tag:Places/Italy/Rome") == {rome.pk}
    assert found("tag:places -tag:rome") == {paris.pk}


def test_model_terms_map_onto_the_vocabulary_and_unknown_ones_are_proposed(photos):
    dog = tags.for_path(["Animals", "Dog"])
    cat = tags.for_path(["Animals", "Cat"])
    tags.add_alias(cat, "Kitty")
    links = tags.suggest_from_caption(photos[0].pk, ["Dogs", "kitty", "DOG", "Sunset Glow"],
                                      model="transformers:smolvlm", prompt_version="3")
    by_tag = {link.tag_id: link for link in links}
    assert set(by_tag) >= {dog.pk, cat.pk}
    assert by_tag[dog.pk].term == "Dogs" and by_tag[dog.pk].state == "suggested"
    proposed = Tag.objects.get(name="sunset glow")
    assert proposed.status == "proposed" and proposed.pk in by_tag, "a new word is proposed, not made a tag"
    assert by_tag[dog.pk].model == "transformers:smolvlm" and by_tag[dog.pk].prompt_version == "3"
    assert Tag.objects.filter(status="active").count() == 3  # Animals, Dog, Cat


def test_decisions_are_sticky_across_caption_re_runs(photos):
    photo = photos[0]
    [dog] = tags.suggest_from_caption(photo.pk, ["dog"], model="m1", prompt_version="1")
    [cat] = tags.suggest_from_caption(photo.pk, ["cat"], model="m1", prompt_version="1")
    tags.suggest_from_caption(photo.pk, ["dog", "cat", "ball"], model="m1", prompt_version="1")
    tags.decide(dog.tag, [photo.pk], True)
    tags.decide(cat.tag, [photo.pk], False)
    # The model is run again and now says other things.
    tags.suggest_from_caption(photo.pk, ["cat", "grass"], model="m2", prompt_version="2")
    assert states(photo) == {"dog": "accepted", "cat": "rejected", "grass": "suggested"}, \
        "the accepted tag stays, the rejected one does not come back, the stale suggestion (ball) goes"


def test_file_keywords_never_overrule_the_owners_rejection(library):
    photo = make_photo(library, "k.jpg", taken=datetime(2020, 1, 1, tzinfo=UTC), keywords=["holiday"])
    tags.import_file_keywords([photo.pk])
    tags.decide(Tag.objects.get(path="holiday"), [photo.pk], False)
    tags.import_file_keywords([photo.pk])
    assert states(photo) == {"holiday": "rejected"}


def test_file_keywords_accept_only_the_suggestions_each_file_states(library):
    taken = datetime(2020, 1, 1, tzinfo=UTC)
    stated = make_photo(library, "a.jpg", taken=taken, keywords=["dog", "Dog", "beach"])
    other = make_photo(library, "b.jpg", taken=taken, keywords=["beach"])
    bare = make_photo(library, "c.jpg", taken=taken)
    for photo in (stated, other, bare):
        tags.suggest_from_caption(photo.pk, ["dog"], model="m1", prompt_version="1")
    assert tags.import_file_keywords([stated.pk, other.pk, bare.pk]) == 2, "beach twice; dog was suggested already"
    assert states(stated) == {"dog": "accepted", "beach": "accepted"}
    assert states(other) == {"dog": "suggested", "beach": "accepted"}, "another photo's file does not decide for it"
    assert states(bare) == {"dog": "suggested"}
    dog = PhotoTag.objects.get(photo=stated, tag__path="dog")
    assert dog.source == "file" and dog.decided_at is not None


def test_the_owner_adds_tags_by_name_path_or_alias(photos):
    cat = tags.for_path(["Animals", "Cat"])
    tags.add_alias(cat, "kitty")
    assert tags.add(photos[0], "Kitty").tag == cat
    assert tags.add(photos[0], "Places/Norway").tag.path == "Places/Norway"
    proposed = tags.for_path(["rainbow"], status="proposed")
    link = tags.add(photos[0], "rainbow")
    assert link.tag == proposed and Tag.objects.get(pk=proposed.pk).status == "active", \
        "adding a proposed tag by hand takes it into the vocabulary"
    assert set(states(photos[0]).values()) == {"accepted"}
    assert PhotoTag.objects.get(photo=photos[0], tag=cat).source == "owner"


def test_undo_reverts_the_last_batch_of_decisions(photos, staff):
    tag = tags.for_path(["dog"])
    for p in photos:
        tags.suggest_from_caption(p.pk, ["dog"], model="m", prompt_version="1")
    tags.decide(tag, [photos[0].pk], True, by=staff)
    tags.decide(tag, [photos[1].pk, photos[2].pk], False, by=staff)
    assert tags.undo(staff) == 2
    assert [states(p)["dog"] for p in photos] == ["accepted", "suggested", "suggested", "suggested"]
    assert tags.undo(staff) == 1
    assert states(photos[0])["dog"] == "suggested"
    assert tags.undo(staff) == 0
    assert TagDecision.objects.filter(undone=True).count() == 3


def test_rename_moves_the_children_and_keeps_the_old_name_as_an_alias(library):
    photo = make_photo(library, "k.jpg", taken=datetime(2020, 1, 1, tzinfo=UTC), keywords=["Trips|Itlay|Rome"])
    tags.import_file_keywords([photo.pk])
    tags.rename(Tag.objects.get(path="Trips/Itlay"), "Italy")
    assert set(Tag.objects.values_list("path", flat=True)) == {"Trips", "Trips/Italy", "Trips/Italy/Rome"}
    assert TagAlias.objects.get(alias="itlay").tag.path == "Trips/Italy"
    with pytest.raises(tags.TagError, match="merge"):
        tags.rename(tags.for_path(["Trips", "Rome"]), "Italy")


def test_merge_rewrites_every_link_and_keeps_the_history(photos, staff):
    kitty = tags.for_path(["kitty"])
    cat = tags.for_path(["Animals", "Cat"])
    for p in photos[:2]:
        tags.suggest_from_caption(p.pk, ["kitty"], model="m", prompt_version="1")
    tags.suggest_from_caption(photos[2].pk, ["kitty", "cat"], model="m", prompt_version="1")
    tags.decide(kitty, [photos[0].pk], True, by=staff)
    tags.decide(kitty, [photos[1].pk], False, by=staff)
    tags.decide(kitty, [photos[2].pk], True, by=staff)
    moved = tags.merge(kitty, cat, by=staff)
    assert not Tag.objects.filter(pk=kitty.pk).exists()
    assert moved == 2
    assert [states(p).get("Animals/Cat") for p in photos] == ["accepted", "rejected", "accepted", None], \
        "where both existed, the owner's decision wins over the suggestion"
    history = TagDecision.objects.filter(tag=cat).values_list("tag_path", "after")
    assert sorted(history) == [("kitty", "accepted"), ("kitty", "accepted"), ("kitty", "rejected")]
    assert TagAlias.objects.get(alias="kitty").tag == cat
    assert tags.find("kitty") == cat


# -- the owner's caption -----------------------------------------------------------------------


def test_the_owners_caption_wins_on_the_page_in_search_and_survives_re_runs(photos, staff_client):
    photo = photos[0]
    Caption.objects.create(photo=photo, backend="t", model="m", prompt_version="1", raw_text="",
                           caption="A dog on a sofa.")
    documents.refresh([photo.pk])
    response = staff_client.post(f"/photos/{photo.pk}/caption/", {"caption": "Rex asleep after the marathon"})
    assert response.status_code == 302
    html = staff_client.get(f"/photos/{photo.pk}/").content.decode()
    assert html.index("Rex asleep after the marathon") < html.index("A dog on a sofa."), "the owner's caption leads"
    assert {r.photo.pk for r in search.search("marathon").results} == {photo.pk}
    # A new model caption arrives: the owner's stays.
    Caption.objects.create(photo=photo, backend="t", model="m2", prompt_version="2", raw_text="", caption="A brown dog.")
    documents.refresh([photo.pk])
    assert OwnerCaption.objects.get(photo=photo).caption == "Rex asleep after the marathon"
    assert {r.photo.pk for r in search.search("marathon").results} == {photo.pk}
    out = StringIO()
    call_command("search", "marathon", "--json", stdout=out)
    assert json.loads(out.getvalue())["results"][0]["caption"] == "Rex asleep after the marathon"
    staff_client.post(f"/photos/{photo.pk}/caption/", {"caption": "  "})
    assert not OwnerCaption.objects.filter(photo=photo).exists(), "an empty caption gives the model's back"


def test_photo_tags_show_their_provenance(photos, viewer_client):
    [link] = tags.suggest_from_caption(photos[0].pk, ["dog"], model="transformers:smolvlm", prompt_version="3")
    PhotoTag.objects.filter(pk=link.pk).update(score=2.5)
    html = viewer_client.get(f"/photos/{photos[0].pk}/tags/", HTTP_HX_REQUEST="true").content.decode()
    assert "dog" in html and "caption · score 2.5 · suggested" in html
    assert "transformers:smolvlm, prompt 3" in html
    assert "Add a tag" not in html, "viewers see tags, staff change them"
