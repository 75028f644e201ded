"""django-q2 task entry points of the tagging app. Stage batches run through ``gallery.tasks.run_stage``."""


def near_duplicates() -> int:
    from tagging import near_duplicates as nd

    return nd.refresh()
