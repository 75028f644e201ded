"""Template context on every page."""

from gallery import stages


def model_banner(request):
    """Messages for models whose weights are missing (the banner on every page)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    problems = []
    for message in stages.unavailable_messages():
        headline, _, _ = message.partition(":")  # "Model X is not available"
        problems.append({"headline": headline, "detail": message})
    return {"model_problems": problems}
