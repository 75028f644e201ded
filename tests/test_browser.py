"""The gallery in a real headless Chromium: log in, scroll, open a photo, arrow to the next."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gallery.models import Library
from tests.conftest import headless_chromium
from tests.factories import make_jpeg, make_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(gallery, live_server):
    """Chromium, closed before the live server stops."""
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def gallery(tmp_path, settings, django_user_model):
    settings.GALLERY_PAGE_SIZE = 12
    root = tmp_path / "lib"
    library = Library.objects.create(name="Browser", root=str(root))
    base = datetime(2021, 5, 1, tzinfo=timezone.utc)
    photos = []
    for i in range(30):
        make_jpeg(root / f"p{i}.jpg", size=(120, 90), color=(i * 8, 100, 255 - i * 8))
        photos.append(make_photo(library, f"p{i}.jpg", taken=base + timedelta(hours=i)))
    django_user_model.objects.create_user("owner", password="a-long-password-1", is_staff=True)
    return sorted(photos, key=lambda p: p.taken_at, reverse=True)


def test_log_in_scroll_open_a_photo_and_arrow_to_the_next(gallery, live_server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 420})
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url

    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "a-long-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("a.tile")
    assert page.locator("a.tile").count() == 12

    # Scrolling to the end loads more through htmx, until all 30 are there.
    for _ in range(10):
        page.mouse.wheel(0, 20000)
        page.wait_for_timeout(300)
        if page.locator("a.tile").count() == 30:
            break
    assert page.locator("a.tile").count() == 30
    shown = [int(x) for x in page.locator("a.tile").evaluate_all("els => els.map(e => e.dataset.photo)")]
    assert shown == [p.pk for p in gallery], "newest first, each once"

    page.locator("a.tile").nth(3).click()
    page.wait_for_selector("img#photo")
    assert page.url.endswith(f"/photos/{gallery[3].pk}/")

    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"**/photos/{gallery[4].pk}/")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**/photos/{gallery[3].pk}/")



@pytest.fixture
def searchable(gallery):
    from tagging import documents
    from tagging.models import Caption

    Caption.objects.create(photo=gallery[5], backend="t", model="m", prompt_version="v", raw_text="",
                           caption="A lighthouse at dusk.", tags=["lighthouse"])
    documents.refresh_all()
    return gallery[5]


def test_typing_in_the_search_box_shows_results_and_a_shareable_url(searchable, live_server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "a-long-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("a.tile")

    page.locator("form.search input[name=q]").press_sequentially("lighthouse", delay=40)
    page.wait_for_url("**/search/?q=lighthouse")
    page.wait_for_selector("#results a.tile")
    shown = page.locator("#results a.tile").evaluate_all("els => els.map(e => Number(e.dataset.photo))")
    assert shown == [searchable.pk]
    assert "caption" in page.locator("#results a.tile .score").first.inner_text()

    # The URL works on its own (shareable, no JavaScript needed to get there).
    page.goto(live_server.url + "/search/?q=lighthouse")
    assert page.locator("#results a.tile").count() == 1


def test_reviewing_a_tag_with_the_keyboard_only(gallery, live_server, browser):
    """Log in, open the review of "dog", and decide with keys alone: the counters change, undo works."""
    # expect(), not wait_for_function("…"): the page's Content-Security-Policy forbids eval of a string.
    from playwright.sync_api import expect

    from tagging import tags
    from tagging.models import PhotoTag

    for i, photo in enumerate(gallery[:8]):
        [link] = tags.suggest_from_caption(photo.pk, ["dog"], model="m", prompt_version="1")
        PhotoTag.objects.filter(pk=link.pk).update(score=i * 0.5)
    tags.suggest_from_caption(gallery[9].pk, ["cat"], model="m", prompt_version="1")
    dog = link.tag

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(live_server.url + f"/review/tag/{dog.pk}/")
    page.fill("input[name=username]", "owner")
    page.fill("input[name=password]", "a-long-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("#board .review-item.cursor")
    count = lambda name: int(page.text_content(f'#board [data-count="{name}"]'))  # noqa: E731
    assert (count("pending"), count("accepted"), count("rejected")) == (8, 0, 0)
    assert page.is_visible("#legend")

    page.keyboard.press("a")  # accept the photo under the cursor
    expect(page.locator("#board [data-count=accepted]")).to_have_text("1")
    assert count("pending") == 7

    page.keyboard.press("ArrowRight")
    page.keyboard.press("x")  # select two photos …
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    assert page.locator("#board .review-item.selected").count() == 2
    page.keyboard.press("r")  # … and reject them together
    expect(page.locator("#board [data-count=rejected]")).to_have_text("2")
    assert count("pending") == 5

    page.keyboard.press("u")  # undo the rejection
    expect(page.locator("#board [data-count=rejected]")).to_have_text("0")
    assert (count("pending"), count("accepted")) == (7, 1)
    assert PhotoTag.objects.filter(tag=dog, state="accepted").count() == 1

    page.keyboard.press("n")  # the next tag waiting: cat
    page.wait_for_url(f"**/review/tag/{tags.find('cat').pk}/")
    assert "Is this" in page.text_content("h1") and "cat" in page.text_content("h1")
