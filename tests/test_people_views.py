"""People: naming, renaming, merging, moving faces and hiding through the pages; crops; the review queue; search.

Real photos from the corpus are imported (thumbnails rendered), and faces are
placed on them as the faces stage would: Face and Person rows in the real
database. Every decision is a POST by a staff user through the test client.
"""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from PIL import Image

from gallery import libraries, scans
from gallery.models import SourceFile
from people import crops, naming
from people.models import Face, Person
from tagging import search
from tagging.query import parse_query

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
FILES = {"astronaut": "bundled_photo__astronaut_face.jpg", "cameraman": "bundled_photo__cameraman_gray.jpg",
         "coffee": "bundled_photo__coffee.jpg"}


@pytest.fixture
def photos(library_dir):
    """Three corpus photos imported for real, with their grid and viewer thumbnails."""
    for name in FILES.values():
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    report = scans.import_library(library, sync=True)
    assert report.totals["imported"] == 3
    by_file = {sf.relpath: sf.photo for sf in SourceFile.objects.select_related("photo")}
    return SimpleNamespace(**{key: by_file[name] for key, name in FILES.items()})


def face(photo, person=None, box=(0.35, 0.08, 0.2, 0.3), size=120, **fields):
    return Face.objects.create(photo=photo, person=person, x=box[0], y=box[1], w=box[2], h=box[3], size=size,
                               detector="hog", **fields)


def cluster(*faces_on, name=""):
    """A cluster with one face on each photo given, as clustering leaves it; named by ``naming`` if ``name``."""
    person = Person.objects.create()
    for i, photo in enumerate(faces_on):
        face(photo, person, box=(0.3 + 0.01 * i, 0.1, 0.2, 0.3), size=100 + i)
    if name:
        return naming.name(person, name)  # as the owner would: the search documents follow
    Person.refresh([person.pk])
    person.refresh_from_db()
    return person


def found(q: str) -> set[int]:
    return {r.photo.pk for r in search.search(q).results}


# -- naming ------------------------------------------------------------------------------------


def test_naming_a_cluster_names_it_locks_its_faces_and_makes_its_photos_findable(staff_client, photos):
    ann = cluster(photos.astronaut, photos.cameraman)
    assert not found("Eileen")

    response = staff_client.post(f"/people/{ann.pk}/name/", {"name": "  Eileen\tCollins "})
    assert response.status_code == 302 and response["Location"] == f"/people/{ann.pk}/"
    ann.refresh_from_db()
    assert ann.name == "Eileen Collins"
    assert set(ann.faces.values_list("locked", flat=True)) == {True}
    # The name is text evidence in the full-text document, and a filter.
    assert found("Eileen") == {photos.astronaut.pk, photos.cameraman.pk}
    assert found('person:"eileen collins"') == {photos.astronaut.pk, photos.cameraman.pk}
    assert found("collins") == {photos.astronaut.pk, photos.cameraman.pk}


def test_a_name_someone_already_has_merges_the_cluster_into_them_ignoring_case(staff_client, photos):
    ann = cluster(photos.astronaut, name="Ann")
    stranger = cluster(photos.cameraman, photos.coffee)

    response = staff_client.post(f"/people/{stranger.pk}/name/", {"name": "ANN"})
    assert response["Location"] == f"/people/{ann.pk}/"
    assert not Person.objects.filter(pk=stranger.pk).exists()
    ann.refresh_from_db()
    assert ann.name == "Ann" and ann.face_count == 3
    assert found("person:ann") == {photos.astronaut.pk, photos.cameraman.pk, photos.coffee.pk}


def test_renaming_changes_what_search_finds(staff_client, photos):
    person = cluster(photos.astronaut, name="Eileen")
    assert found("Eileen") == {photos.astronaut.pk}
    staff_client.post(f"/people/{person.pk}/name/", {"name": "Astronaut Collins"})
    person.refresh_from_db()
    assert person.name == "Astronaut Collins"
    assert not found("Eileen") and not found("person:Eileen")
    assert found('person:"Astronaut Collins"') == {photos.astronaut.pk}
    # Only the case changes: the same person keeps it (no merge with themselves).
    staff_client.post(f"/people/{person.pk}/name/", {"name": "astronaut collins"})
    person.refresh_from_db()
    assert person.name == "astronaut collins"


def test_merging_moves_every_face_and_removes_the_other_person(staff_client, photos):
    ann = cluster(photos.astronaut, name="Ann")
    annie = cluster(photos.cameraman, name="Annie")

    response = staff_client.post(f"/people/{annie.pk}/merge/", {"into": "ann"})
    assert response["Location"] == f"/people/{ann.pk}/"
    assert not Person.objects.filter(pk=annie.pk).exists()
    ann.refresh_from_db()
    assert ann.face_count == 2 and set(ann.faces.values_list("locked", flat=True)) == {True}
    assert found("Annie") == set()
    assert found("person:Ann") == {photos.astronaut.pk, photos.cameraman.pk}


def test_merging_an_unnamed_cluster_into_a_named_one_and_a_named_one_into_a_cluster(photos):
    ann = cluster(photos.astronaut, name="Ann")
    group = cluster(photos.cameraman)
    assert naming.merge(ann, group).name == "Ann"  # the cluster takes the name along with the faces
    assert Person.objects.get(pk=group.pk).face_count == 2
    assert not Person.objects.filter(pk=ann.pk).exists()


def test_merging_into_themselves_or_nobody_is_refused_and_changes_nothing(staff_client, photos):
    ann = cluster(photos.astronaut, name="Ann")
    response = staff_client.post(f"/people/{ann.pk}/merge/", {"into": "ANN"}, follow=True)
    assert "cannot be merged into themselves" in response.content.decode()
    response = staff_client.post(f"/people/{ann.pk}/merge/", {"into": "Nobody Known"}, follow=True)
    assert "Nobody has that name" in response.content.decode()
    ann.refresh_from_db()
    assert ann.name == "Ann" and ann.face_count == 1


def test_moving_faces_out_to_nobody_a_new_person_or_someone_by_name(staff_client, photos):
    group = cluster(photos.astronaut, photos.cameraman, photos.coffee)
    a, c, k = group.faces.order_by("photo__pk").all()
    bob = cluster(name="Bob")

    staff_client.post(f"/people/{group.pk}/faces/move/", {"face": [a.pk], "action": "remove"})
    a.refresh_from_db()
    assert a.person is None and a.locked

    staff_client.post(f"/people/{group.pk}/faces/move/", {"face": [c.pk], "action": "move", "to": "bob"})
    c.refresh_from_db()
    assert c.person_id == bob.pk and c.locked
    assert found("person:Bob") == {c.photo_id}

    response = staff_client.post(f"/people/{group.pk}/faces/move/", {"face": [k.pk], "action": "new"})
    k.refresh_from_db()
    assert k.person_id not in (group.pk, bob.pk, None) and k.person.name == "" and k.locked
    # The emptied cluster is gone; the page follows the face to its new person.
    assert not Person.objects.filter(pk=group.pk).exists()
    assert response["Location"] == f"/people/{k.person_id}/"

    # A name nobody has yet makes a new person of that name.
    staff_client.post(f"/people/{bob.pk}/faces/move/", {"face": [c.pk], "action": "move", "to": "Carol"})
    assert Person.objects.get(name="Carol").face_count == 1
    assert Person.objects.get(pk=bob.pk).face_count == 0  # named: kept, with no faces


def test_only_the_persons_own_faces_are_moved(staff_client, photos):
    ann, bob = cluster(photos.astronaut, name="Ann"), cluster(photos.cameraman, name="Bob")
    bobs_face = bob.faces.get()
    response = staff_client.post(f"/people/{ann.pk}/faces/move/", {"face": [bobs_face.pk], "action": "remove"},
                                 follow=True)
    assert "None of those faces belongs to this person" in response.content.decode()
    bobs_face.refresh_from_db()
    assert bobs_face.person_id == bob.pk


def test_hiding_keeps_a_person_off_the_people_page_and_the_queue_until_shown_again(staff_client, photos):
    statue = cluster(photos.coffee, photos.cameraman)
    staff_client.post(f"/people/{statue.pk}/hide/", {"hidden": "1"})
    statue.refresh_from_db()
    assert statue.hidden
    page = staff_client.get("/people/").content.decode()
    assert f'data-person="{statue.pk}"' not in page and "Show 1 hidden" in page
    assert f'data-person="{statue.pk}"' in staff_client.get("/people/?hidden=1").content.decode()
    assert staff_client.get("/review/people/").status_code == 200  # nobody waits: the empty queue

    staff_client.post(f"/people/{statue.pk}/hide/", {"hidden": "0"})
    statue.refresh_from_db()
    assert not statue.hidden
    assert staff_client.get("/review/people/")["Location"] == f"/review/people/{statue.pk}/"


# -- pages ------------------------------------------------------------------------------------


def test_the_people_page_lists_named_people_first_then_clusters_by_size_with_a_face_each(viewer_client, photos):
    small = cluster(photos.coffee)
    big = cluster(photos.astronaut, photos.cameraman, photos.coffee)
    zoe, adam = cluster(photos.cameraman, name="Zoe"), cluster(photos.astronaut, name="adam")
    html = viewer_client.get("/people/").content.decode()
    order = [int(pk) for pk in re.findall(r'class="person-card" href="/people/\d+/" data-person="(\d+)"', html)]
    assert order == [adam.pk, zoe.pk, big.pk, small.pk]
    big.refresh_from_db()
    assert f"/faces/{big.cover_id}/crop.jpg" in html and "3 faces" in html
    assert 'href="/people/"' in html  # the nav links here


def test_a_persons_page_shows_their_photos_and_faces_and_pages_with_a_cursor(viewer_client, photos, settings):
    settings.GALLERY_PAGE_SIZE = 2
    ann = cluster(photos.astronaut, photos.cameraman, photos.coffee, name="Ann")
    html = viewer_client.get(f"/people/{ann.pk}/").content.decode()
    assert "<h1>Ann" in html and "3 photos" in html
    assert len(re.findall(r'class="face" href="/photos/\d+/" data-face=', html)) == 3
    first = [int(x) for x in re.findall(r'class="tile" href="/photos/\d+/" data-photo="(\d+)"', html)]
    assert len(first) == 2
    cursor = re.search(r'hx-get="/people/\d+/\?after=([\d_]+)"', html).group(1)
    rest = viewer_client.get(f"/people/{ann.pk}/?after={cursor}", **HTMX).content.decode()
    more = [int(x) for x in re.findall(r'data-photo="(\d+)"', rest)]
    assert set(first + more) == {photos.astronaut.pk, photos.cameraman.pk, photos.coffee.pk}
    assert "Change this person" not in html  # a viewer gets no controls
    assert viewer_client.get(f"/people/{ann.pk}/?after=garbage").status_code == 400
    assert viewer_client.get("/people/999999/").status_code == 404


def test_a_face_crop_is_cut_from_the_viewer_thumbnail_with_a_margin_and_cached(viewer_client, photos, settings):
    f = face(photos.coffee, box=(0.4, 0.25, 0.2, 0.3))  # a 120 × 120 px box on the 600 × 400 photo
    response = viewer_client.get(f"/faces/{f.pk}/crop.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as crop:
        width, height = crop.size
    # 0.2 × 600 = 120 px wide and 0.3 × 400 = 120 px high, grown by 30% on each side: 192 px square.
    assert (width, height) == (192, 192)
    cached = crops.crop_path(settings.THUMBNAIL_DIR, photos.coffee.content_hash, f.pk, f.box)
    assert cached.is_file() and settings.THUMBNAIL_DIR in cached.parents
    before = cached.stat().st_mtime_ns
    assert viewer_client.get(f"/faces/{f.pk}/crop.jpg").status_code == 200
    assert cached.stat().st_mtime_ns == before  # served from the cache

    assert viewer_client.get("/faces/999999/crop.jpg").status_code == 404
    at_edge = face(photos.coffee, box=(0.9, 0.9, 0.5, 0.5))  # clamped to the image, still a crop
    assert viewer_client.get(f"/faces/{at_edge.pk}/crop.jpg").status_code == 200
    for path in settings.THUMBNAIL_DIR.glob(f"{photos.astronaut.content_hash[:2]}/{photos.astronaut.content_hash}-*"):
        path.unlink()
    no_thumbnail = face(photos.astronaut)
    assert viewer_client.get(f"/faces/{no_thumbnail.pk}/crop.jpg").status_code == 404


def test_the_photo_page_draws_named_boxes(viewer_client, photos):
    ann = cluster(photos.astronaut, name="Ann <script>")
    face(photos.astronaut)  # nobody's face: no box
    html = viewer_client.get(f"/photos/{photos.astronaut.pk}/").content.decode()
    assert len(re.findall(r'class="face-box"', html)) == 1
    assert f'href="/people/{ann.pk}/" data-x="0.30000" data-y="0.10000" data-w="0.20000" data-h="0.30000"' in html
    assert "Ann &lt;script&gt;" in html and "Ann <script>" not in html
    assert "js/people.js" in html and "face-toggle" in html
    assert "face-layer" not in viewer_client.get(f"/photos/{photos.coffee.pk}/").content.decode()
    naming.hide(ann)  # hidden people get no box (nor a region in exported files)
    assert "face-box" not in viewer_client.get(f"/photos/{photos.astronaut.pk}/").content.decode()


def test_the_admin_lists_and_edits_people_and_faces(client, django_user_model, photos):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    ann = cluster(photos.astronaut, name="Ann")
    one = ann.faces.get()
    assert "Ann" in client.get("/admin/people/person/").content.decode()
    assert client.get(f"/admin/people/person/{ann.pk}/change/").status_code == 200
    assert client.get("/admin/people/face/?q=ann").status_code == 200
    page = client.get(f"/admin/people/face/{one.pk}/change/").content.decode()
    assert 'name="locked"' in page and 'name="embedding"' not in page
    assert 'name="name"' not in client.get(f"/admin/people/person/{ann.pk}/change/").content.decode()

    # A face given to someone else in the admin is counted and searched like any other move.
    bob = cluster(photos.cameraman, name="Bob")
    response = client.post(f"/admin/people/face/{one.pk}/change/", {
        "photo": one.photo_id, "person": bob.pk, "source": "detected", "x": 0.3, "y": 0.1, "w": 0.2, "h": 0.3,
        "landmarks": "[]", "detector": "hog", "size": 100, "region_name": "", "locked": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Person.objects.get(pk=bob.pk).face_count == 2 and Person.objects.get(pk=ann.pk).face_count == 0
    assert found("person:Bob") == {photos.astronaut.pk, photos.cameraman.pk} and not found("Ann")


def test_name_completion_offers_existing_names_that_start_with_what_was_typed(viewer_client, photos):
    cluster(photos.astronaut, photos.cameraman, name="Annabel")
    cluster(photos.coffee, name="Joanna")
    cluster(photos.coffee, name="Bob")
    html = viewer_client.get("/people/names/", {"name": "ann"}).content.decode()
    assert re.findall(r'<option value="([^"]+)">', html) == ["Annabel", "Joanna"]


# -- the review queue ----------------------------------------------------------------------------


def test_the_queue_shows_the_biggest_unnamed_cluster_and_naming_moves_on_to_the_next(staff_client, photos):
    small = cluster(photos.coffee)
    big = cluster(photos.astronaut, photos.cameraman)
    cluster(photos.coffee, name="Known")
    review = staff_client.get("/review/").content.decode()
    assert 'href="/review/people/"' in review and "2 groups of faces wait for a name" in review
    assert staff_client.get("/review/people/")["Location"] == f"/review/people/{big.pk}/"

    board = staff_client.get(f"/review/people/{big.pk}/").content.decode()
    assert "Who is this?" in board and 'id="who-name"' in board and 'id="legend"' in board
    assert len(re.findall(r'class="who-face"', board)) == 2
    assert f'href="/review/people/{small.pk}/"' in board  # skip

    response = staff_client.post(f"/people/{big.pk}/name/", {"name": "Eileen", "review": "1"}, **HTMX)
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert f'data-person="{small.pk}"' in response.content.decode()
    assert response["HX-Push-Url"] == f"/review/people/{small.pk}/"
    assert Person.objects.get(pk=big.pk).name == "Eileen"

    # An empty name is refused on the board, which stays on its cluster.
    response = staff_client.post(f"/people/{small.pk}/name/", {"name": "   ", "review": "1"}, **HTMX)
    assert "Type a name." in response.content.decode() and f'data-person="{small.pk}"' in response.content.decode()


def test_taking_one_wrong_face_out_in_the_queue_keeps_the_cluster_on_the_board(staff_client, photos):
    group = cluster(photos.astronaut, photos.cameraman, photos.coffee)
    wrong = group.faces.get(photo=photos.coffee)
    response = staff_client.post(f"/people/{group.pk}/faces/move/",
                                 {"face": wrong.pk, "action": "remove", "review": "1"}, **HTMX)
    html = response.content.decode()
    assert f'data-person="{group.pk}"' in html and f'data-face="{wrong.pk}"' not in html
    wrong.refresh_from_db()
    assert wrong.person is None and wrong.locked
    assert Person.objects.get(pk=group.pk).face_count == 2

    # Hiding from the queue goes on to the next cluster, or says that nobody waits.
    response = staff_client.post(f"/people/{group.pk}/hide/", {"review": "1"}, **HTMX)
    assert "No unnamed faces wait for a name" in response.content.decode()


# -- access and hostile input ---------------------------------------------------------------------


def test_viewers_are_refused_every_people_editing_action(viewer_client, photos):
    group = cluster(photos.astronaut, photos.cameraman)
    other = cluster(photos.coffee, name="Other")
    one = group.faces.first()
    actions = [
        (f"/people/{group.pk}/name/", {"name": "Mallory"}),
        (f"/people/{group.pk}/merge/", {"into": "Other"}),
        (f"/people/{group.pk}/hide/", {"hidden": "1"}),
        (f"/people/{group.pk}/faces/move/", {"face": one.pk, "action": "remove"}),
        (f"/people/{group.pk}/faces/move/", {"face": one.pk, "action": "move", "to": "Other"}),
    ]
    for url, data in actions:
        for extra in ({}, HTMX):
            assert viewer_client.post(url, data, **extra).status_code == 403, url
    assert viewer_client.get("/review/people/").status_code == 403
    assert viewer_client.get(f"/review/people/{group.pk}/").status_code == 403
    group.refresh_from_db()
    assert (group.name, group.hidden, group.face_count) == ("", False, 2)
    assert other.faces.count() == 1 and Face.objects.filter(person=None).count() == 0


@pytest.mark.parametrize("name", ["", "   ", "\x01\x02", "x" * 201, "y" * 1_000_000, "\u202e\u200f"])
def test_a_name_that_is_empty_or_too_long_is_refused_with_a_reason(staff_client, photos, name):
    group = cluster(photos.astronaut)
    for extra, status in (({}, 200), (HTMX, 400), ({**HTMX, "review": "1"}, 200)):
        data = {"name": name, "review": extra.pop("review", "")}
        response = staff_client.post(f"/people/{group.pk}/name/", data, follow=not extra, **extra)
        assert response.status_code == status
        text = response.content.decode()
        assert "Type a name." in text or "at most 200 characters" in text
    group.refresh_from_db()
    assert group.name == ""


def test_a_name_of_exactly_two_hundred_characters_is_kept(photos):
    group = cluster(photos.astronaut)
    assert naming.name(group, "é" * 200).name == "é" * 200


def test_bad_ids_and_values_never_give_a_500(staff_client, photos):
    group = cluster(photos.astronaut, photos.cameraman)
    one = group.faces.first()
    base = f"/people/{group.pk}"
    cases = [
        (f"{base}/faces/move/", {"face": ["abc", "-1", str(2**70), "1e9", ""], "action": "remove"}),
        (f"{base}/faces/move/", {"action": "remove"}),
        (f"{base}/faces/move/", {"face": one.pk, "action": "explode"}),
        (f"{base}/faces/move/", {"face": one.pk, "action": "move", "to": ""}),
        (f"{base}/faces/move/", {"face": one.pk, "action": "move", "to": "z" * 10_000}),
        (f"{base}/faces/move/", {"face": [one.pk] * 5000, "action": "new", "review": "1"}),
        (f"{base}/merge/", {"into": ""}),
        (f"{base}/merge/", {"into": "q" * 100_000}),
        (f"{base}/merge/", {}),
        (f"{base}/hide/", {"hidden": "maybe"}),
        ("/people/999999/name/", {"name": "Ghost"}),
        ("/people/999999/merge/", {"into": "Ghost"}),
        ("/people/999999/hide/", {}),
        ("/people/999999/faces/move/", {"face": one.pk}),
        (f"/people/{2**70}/name/", {"name": "Overflow"}),
    ]
    for url, data in cases:
        for extra in ({}, HTMX):
            response = staff_client.post(url, data, **extra)
            assert response.status_code < 500, (url, data, response.status_code)
    assert staff_client.get(f"/review/people/{2**70}/").status_code == 404
    assert staff_client.get("/people/names/", {"name": "\x00" * 3}).status_code < 500
    assert staff_client.get("/people/names/", {"name": "%" * 5000}).status_code == 200


# -- search ------------------------------------------------------------------------------------


def test_person_and_has_faces_filters(photos):
    ann = cluster(photos.astronaut, photos.cameraman, name="Ann Smith")
    bob = cluster(photos.cameraman, name="Bob")
    face(photos.coffee)  # a face that belongs to nobody
    assert parse_query('person:"Ann Smith" person:bob').persons == ["Ann Smith", "bob"]
    assert parse_query('person:"Ann Smith"').unparse() == 'person:"Ann Smith"'
    assert parse_query("person:").errors == ['person: needs a value, like person:"Ann Smith" (no space after the colon)']

    assert found('person:"ann smith"') == {photos.astronaut.pk, photos.cameraman.pk}
    assert found("person:Bob person:\"Ann Smith\"") == {photos.cameraman.pk}  # all of them
    assert found("person:Nobody") == set()
    assert found("has:faces") == {photos.astronaut.pk, photos.cameraman.pk, photos.coffee.pk}
    assert found("has:faces -Bob") == {photos.astronaut.pk, photos.coffee.pk}
    assert ann.pk != bob.pk


def test_a_name_typed_in_the_search_box_finds_the_photos(viewer_client, photos):
    cluster(photos.astronaut, name="Eileen Collins")
    from tagging import documents

    documents.refresh_all()  # as after a scan: the names stay in the documents
    html = viewer_client.get("/search/", {"q": "eileen"}).content.decode()
    assert [int(x) for x in re.findall(r'data-photo="(\d+)"', html)] == [photos.astronaut.pk]
    html = viewer_client.get("/search/", {"q": 'person:"Eileen Collins"'}).content.decode()
    assert [int(x) for x in re.findall(r'data-photo="(\d+)"', html)] == [photos.astronaut.pk]


def test_the_people_page_pages_through_unnamed_groups_with_a_cursor(viewer_client, photos, monkeypatch):
    groups = [cluster(*([photos.coffee] * (1 + i % 3))) for i in range(7)]
    monkeypatch.setattr(naming, "UNNAMED_PAGE", 3)
    html = viewer_client.get("/people/").content.decode()
    seen = [int(pk) for pk in re.findall(r'data-person="(\d+)"', html)]
    for _ in range(5):
        more = re.search(r'hx-get="/people/\?after=([\d_]+)"', html)
        if not more:
            break
        html = viewer_client.get(f"/people/?after={more.group(1)}", **HTMX).content.decode()
        assert "<html" not in html
        seen += [int(pk) for pk in re.findall(r'data-person="(\d+)"', html)]
    by_size = sorted(groups, key=lambda p: (-p.face_count, p.pk))
    assert seen == [p.pk for p in by_size], "largest first, each once"
    for bad in ("x", "1_2_3", "-1_5", f"{2**40}_1", "1_" + "9" * 30):
        assert viewer_client.get("/people/", {"after": bad}).status_code == 400
