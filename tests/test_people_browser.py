"""People in a real headless Chromium: name groups of faces from the "who is this?" queue with the keyboard alone."""

from __future__ import annotations

import pytest

from gallery import libraries, scans
from gallery.models import SourceFile
from people import naming
from people.models import Face, Person
from tests.conftest import headless_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
FILES = {"astronaut": "bundled_photo__astronaut_face.jpg", "cameraman": "bundled_photo__cameraman_gray.jpg",
         "coffee": "bundled_photo__coffee.jpg"}


@pytest.fixture
def browser(live_server):
    """Chromium, closed before the live server stops."""
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def faces(library_dir, django_user_model):
    """Three corpus photos imported for real; Annabel Lee is known; two unnamed groups wait, the big one
    with a wrong face in it (the smallest, so it comes last on the board)."""
    for name in FILES.values():
        library_dir.add(name)
    library, _ = libraries.add_library(str(library_dir.path))
    scans.import_library(library, sync=True)
    photo = {key: SourceFile.objects.get(relpath=name).photo for key, name in FILES.items()}
    django_user_model.objects.create_user("owner", password="a-long-password-1", is_staff=True)

    def put(person, key, size, box=(0.3, 0.1, 0.25, 0.3)):
        return Face.objects.create(photo=photo[key], person=person, x=box[0], y=box[1], w=box[2], h=box[3],
                                   size=size, detector="hog")

    annabel = Person.objects.create()
    put(annabel, "coffee", 90, box=(0.1, 0.1, 0.2, 0.3))
    annabel = naming.name(annabel, "Annabel Lee")
    big = Person.objects.create()
    put(big, "astronaut", 200)
    put(big, "cameraman", 190)
    wrong = put(big, "coffee", 50, box=(0.6, 0.5, 0.2, 0.3))
    small = Person.objects.create()
    put(small, "cameraman", 80, box=(0.6, 0.1, 0.2, 0.25))
    Person.refresh([big.pk, small.pk])
    return {"photo": photo, "annabel": annabel, "big": big, "small": small, "wrong": wrong}


def test_naming_people_from_the_review_queue_with_the_keyboard(faces, live_server, browser):
    # expect(), not wait_for_function("…"): the page's Content-Security-Policy forbids eval of a string.
    from playwright.sync_api import expect

    big, small, wrong = faces["big"], faces["small"], faces["wrong"]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(live_server.url + "/review/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "a-long-password-1")
    page.click("button[type=submit]")
    page.click("text=Who is this?")
    page.wait_for_url(f"**/review/people/{big.pk}/")
    expect(page.locator("#who-name")).to_be_focused()  # ready to type
    expect(page.locator("#who .who-face")).to_have_count(3)
    expect(page.locator("#who [data-count=waiting]")).to_have_text("2")
    assert page.is_visible("#legend")

    # Escape leaves the field: keys are commands now. "?" hides and shows the legend.
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#legend")).to_be_hidden()
    page.keyboard.press("?")
    expect(page.locator("#legend")).to_be_visible()
    expect(page.locator("#who-name")).to_have_value("")

    # "s" skips to the next group (and the field is ready for its name); skipping again wraps around.
    page.keyboard.press("s")
    page.wait_for_url(f"**/review/people/{small.pk}/")
    expect(page.locator("#who-name")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    page.wait_for_url(f"**/review/people/{big.pk}/")
    expect(page.locator("#who")).to_have_attribute("data-person", str(big.pk))
    expect(page.locator("#who-name")).to_be_focused()  # the board has settled: the field took the focus
    page.keyboard.press("Escape")
    expect(page.locator("#who-name")).not_to_be_focused()

    # Walk to the wrong face and take it out: the board stays on this group.
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#who .who-face.cursor")).to_have_attribute("data-face", str(wrong.pk))
    page.keyboard.press("x")
    expect(page.locator("#who .who-face")).to_have_count(2)
    expect(page.locator(f'#who .who-face[data-face="{wrong.pk}"]')).to_have_count(0)
    wrong.refresh_from_db()
    assert wrong.person is None and wrong.locked

    # Back to the field; "ann" and Tab completes the known name; Enter names the group: it joins her.
    expect(page.locator("#who-name")).to_be_focused()
    page.keyboard.type("ann", delay=40)
    expect(page.locator("#people-names option")).to_have_count(1)
    page.keyboard.press("Tab")
    expect(page.locator("#who-name")).to_have_value("Annabel Lee")
    page.keyboard.press("Enter")
    # The next group's board, its URL pushed, the field focused again.
    expect(page.locator("#who")).to_have_attribute("data-person", str(small.pk))
    page.wait_for_url(f"**/review/people/{small.pk}/")
    expect(page.locator("#who-name")).to_be_focused()
    assert Person.objects.get(pk=faces["annabel"].pk).face_count == 3

    # A new name for the last group; then nobody waits.
    page.keyboard.type("Eileen Collins", delay=20)
    page.keyboard.press("Enter")
    expect(page.locator("#who .empty")).to_contain_text("No unnamed faces wait for a name")
    assert Person.objects.get(pk=small.pk).name == "Eileen Collins"

    # The People page shows both names with their faces and counts.
    page.click("header nav >> text=People")
    page.wait_for_url("**/people/")
    names = page.locator("#named .person-card .name").all_inner_texts()
    assert names == ["Annabel Lee", "Eileen Collins"]
    expect(page.locator(f'#named [data-person="{faces["annabel"].pk}"] .count')).to_have_text("3 faces")
    expect(page.locator("#unnamed")).to_have_count(0)
    loaded = page.locator("#named .person-card img").evaluate_all(
        "els => Promise.all(els.map(e => e.decode().then(() => e.naturalWidth, () => 0)))")
    assert len(loaded) == 2 and all(width > 0 for width in loaded), "each card shows a real face crop"

    # The photo page draws the named box; "f" hides it.
    page.goto(live_server.url + f"/photos/{faces['photo']['astronaut'].pk}/")
    box = page.locator("#face-layer .face-box")
    expect(box).to_have_count(1)
    expect(box).to_be_visible()
    assert box.inner_text() == "Annabel Lee"
    page.locator("#photo").evaluate("img => img.decode()")  # measured once the photo has its size
    photo_box, face_box = page.locator("#photo").bounding_box(), box.bounding_box()
    assert abs(face_box["x"] - (photo_box["x"] + 0.3 * photo_box["width"])) < 3
    assert abs(face_box["width"] - 0.25 * photo_box["width"]) < 3
    page.keyboard.press("f")
    expect(box).to_be_hidden()
    page.close()
    from django.db import connections

    connections.close_all()  # the connection the checks above opened beside Playwright's loop
