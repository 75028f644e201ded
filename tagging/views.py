"""AI pipeline actions for staff: re-running a stage with the configured model."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from gallery import stages
from tagging import pipeline


@login_required
@require_POST
@staff_member_required
def jobs_reprocess(request, stage: str):
    if stage not in ("embedding", "caption"):
        raise Http404("no such stage")
    n = pipeline.reprocess(stage)
    queued = stages.enqueue_pending(stage)
    messages.success(request, f"{n} photos marked for {stage} with the configured model; {queued} queued.")
    return redirect("jobs")
