"""django-q2 task entry points. Thin: each calls one function and returns its summary."""

from gallery import engine, recovery, scans


def run_stage(stage: str, photo_ids: list[int], model: str = "") -> dict:
    """One batch of any registered stage."""
    return engine.run_stage(stage, photo_ids, model)


def scan_library(library_id: int) -> dict:
    """One slice of a library scan; it queues the next slice itself."""
    return scans.scan_slice(library_id)


def tick() -> dict:
    """Once a minute (the schedule ``recovery.ensure_tick_schedule`` makes): nothing stays stuck."""
    return recovery.recover()
