"""Template context on every page."""

from django.utils.functional import SimpleLazyObject

from gallery import engine


def _problems() -> list[dict]:
    problems = []
    for message in engine.unavailable_messages():
        headline, _, _ = message.partition(":")  # "Model X is not available"
        problems.append({"headline": headline, "detail": message})
    return problems


def model_banner(request):
    """Messages for models whose weights are missing (the banner on every page).

    Lazy: the queries run only when a template shows the banner, not for the
    htmx fragments (grid pages, search-as-you-type) that never do.
    """
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"model_problems": SimpleLazyObject(_problems)}
