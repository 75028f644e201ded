"""The stage registry: every processing stage a photo goes through, declared once.

Each app registers its stages in its ``AppConfig.ready()``: the gallery app
the thumbnail stage, the tagging app the embedding, caption (first pass),
tag score and description (full caption, paced) stages. A
stage is a name, an explicit order (cheap stages first), the stages it needs
done before it can run, a runner, a batch size and the model it currently
uses. Views, commands and templates ask this registry; they never spell a
stage's name. ``gallery.engine`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class StageUnavailable(RuntimeError):
    """Raised by a runner when what the stage needs (model weights, a server) is not here.

    The batch waits in the *unavailable* state with ``message`` (shown as a
    banner), without using an attempt. (Here, not in ``gallery.engine``, so
    that Django-free modules such as ``tagging.clip`` can raise it.)
    """

    @property
    def message(self) -> str:
        return str(self)


def _no_model() -> str:
    return ""


def _no_outputs(model: str):
    return None


def _any_model(model: str) -> str:
    return model


@dataclass(frozen=True)
class StageSpec:
    """How one stage runs.

    ``runner(batch)`` does the stage's own work on a claimed
    :class:`gallery.engine.Batch` and reports each photo through it.
    ``model()`` is the model the stage should use now ("" for stages without
    one); ``check_model(model)`` validates a model given by hand (raises
    ``ValueError``) and returns it; ``outputs(model)`` is a queryset of photo
    ids that already have this model's output (for ``reprocess
    --only-missing``), or None. ``timeout()`` is the most seconds one task of
    this stage may run (default: ``SHOEBOX_TASK_TIMEOUT``).
    """

    name: str
    order: int
    runner: Callable
    batch_size: Callable[[], int]
    needs: tuple[str, ...] = ()
    model: Callable[[], str] = _no_model
    rerunnable: bool = False  # whether the jobs page and `reprocess` may run it again for every photo
    label: str = ""
    check_model: Callable[[str], str] = _any_model
    outputs: Callable[[str], object] = _no_outputs
    timeout: Callable[[], int] | None = None
    # Run only for the photos someone asks for (metadata export): no row is made for every photo,
    # and ``model`` carries the request's options rather than a configured model.
    on_demand: bool = False
    # Whether the stage runs at all now (a setting can switch a whole stage off: faces, OCR).
    # A disabled stage is left out of every listing below, as if it were not registered.
    enabled: Callable[[], bool] = lambda: True
    # A background stage (the full caption) runs as the machine allows: never while an earlier stage
    # has work waiting, one batch per worker process in flight, and at most ``paced()`` more photos now
    # (a rate setting). Work someone asks for (a photo opened, a retry) is queued regardless.
    paced: Callable[[], int] | None = None
    # Readiness beyond ``needs``: narrows a queryset of this stage's PhotoStage rows to those that may
    # run now (a near-duplicate waits for its representative's description).
    ready: Callable[[object], object] | None = None
    # The photos to queue for this stage when someone opens photo ids (its own, and any it waits for).
    on_open: Callable[[list[int]], list[int]] | None = None
    # Photos whose work became ready, and cheap, once these are done (near-duplicates that reuse a
    # representative's description): queued at once, paced or not.
    followers: Callable[[list[int]], list[int]] | None = None
    # Stages whose output this one reads when it is there, without waiting for it (tag scores read the
    # full caption's tags): when one of them is done again, this one is done again.
    uses: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.label or self.name.capitalize()

    def task_timeout(self) -> int:
        from django.conf import settings

        return self.timeout() if self.timeout else settings.Q_CLUSTER["timeout"]


_REGISTRY: dict[str, StageSpec] = {}


def register(spec: StageSpec) -> StageSpec:
    """Add a stage (apps call this in ``ready()``). Registering a name twice replaces it."""
    for need in spec.needs:
        if need == spec.name:
            raise ValueError(f"stage {spec.name!r} cannot need itself")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def ordered() -> list[StageSpec]:
    """Every stage, in the order they run (``order``, then name)."""
    return sorted((s for s in _REGISTRY.values() if s.enabled()), key=lambda s: (s.order, s.name))


def names() -> list[str]:
    return [s.name for s in ordered()]


def get(name: str) -> StageSpec:
    """The stage called ``name``; ``KeyError`` if there is none."""
    return _REGISTRY[name]


def find(name: str) -> StageSpec | None:
    """The stage called ``name``, or None (for names that come from a request)."""
    return _REGISTRY.get(name)


def rerunnable() -> list[StageSpec]:
    return [s for s in ordered() if s.rerunnable]


def later(name: str) -> list[StageSpec]:
    """The stages after ``name``, in order."""
    position = get(name).order
    return [s for s in ordered() if (s.order, s.name) > (position, name)]


def users(name: str) -> list[StageSpec]:
    """Every stage that reads ``name``'s output without waiting for it (``uses``), in order."""
    return [s for s in ordered() if name in s.uses]


def dependents(name: str) -> list[StageSpec]:
    """Every stage that needs ``name``, directly or through another stage, in order."""
    found: set[str] = set()
    frontier = {name}
    while frontier:
        step = {s.name for s in _REGISTRY.values() if set(s.needs) & frontier} - found
        found |= step
        frontier = step
    return [s for s in ordered() if s.name in found]
