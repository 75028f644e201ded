"""Template context on every page."""

from gallery import stages


def model_banner(request):
    """Messages for models whose weights are missing (the banner on every page)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"model_problems": stages.unavailable_messages()}
