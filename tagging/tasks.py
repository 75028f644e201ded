"""django-q2 task entry points of the tagging app. Stage batches run through ``gallery.tasks.run_stage``."""


def near_duplicates() -> int:
    from tagging import near_duplicates as nd

    return nd.refresh()


def learn_tag(tag_id: int) -> dict:
    from tagging import learn

    learned = learn.learn_tag(tag_id)
    return {"tag": tag_id, "kind": learned.kind if learned else None, "f1": learned.f1 if learned else None}
