"""Do MiniLM sentence embeddings help map model terms onto the owner's tags, and at what threshold?

Usage: .venv/bin/python bench/vocabulary_bench.py [--thresholds 0.4,0.45,...]

A labelled set written by hand: a realistic vocabulary of 75 photo tags (a
hierarchy with parent tags, a few aliases) and 172 terms a caption model might
write, each with the tags it may correctly map onto and whether it must map:

* terms the rules already handle (case, plurals, aliases, paths);
* true near-synonyms (automobile → Car, seaside → Beach, sundown → Sunset,
  ocean → Sea, kitty → Cat with no alias);
* kinds of a tag the owner keeps general: puppy → Dog, cathedral → Church,
  sailboat → Boat. Counted as correct: the tag is true of the photo, and
  leaving "puppy" unmatched proposes a near-duplicate of Dog that the owner
  would have to merge by hand, which is what this mapping exists to avoid;
* phrases with two true tags ("snowy mountain": Mountain or Snow, either is right);
* hard negatives whose own tag is not in the vocabulary and which must not land
  on a related tag: sunrise (Sunset is there), lake (Sea, River), tiger (Cat),
  wolf (Dog), mosque (Church), palace (Castle), evening (Night), tea (Coffee),
  motorcycle (Bicycle), Milan (Rome, Venice), Spain (Italy, France)… A hard
  negative may map onto its true parent tag (pasta → Food) without penalty.

A mapping is correct when its tag is one of the case's acceptable tags.
Precision = correct mappings / all mappings (a mapping onto a wrong tag is
the costly error: a wrong merge); recall = correct mappings / terms that must
map. The rule-based matcher alone is compared with rules + all-MiniLM-L6-v2
(``tagging.text_embeddings``) at each threshold; every text is embedded once
and reused across thresholds. The rule for the default: the best F1 among
thresholds with precision ≥ 0.95; the last column (the share of 2,000 bootstrap
resamples of the cases in which precision stays ≥ 0.95) shows whether the bar
holds by a margin or by a single case. The row of the configured default
(``tagging.vocabulary.SYNONYM_THRESHOLD``) is printed too. Not run by ``make test``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: no spin-waiting threads

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tagging.vocabulary import SYNONYM_THRESHOLD, Entry, Vocabulary, normalize  # noqa: E402

MIN_PRECISION = 0.95

# path: aliases
TAGS: dict[str, tuple[str, ...]] = {
    "Animals": (),
    "Animals/Dog": (),
    "Animals/Cat": (),
    "Animals/Bird": (),
    "Animals/Horse": (),
    "Animals/Cow": (),
    "Animals/Butterfly": (),
    "Nature": (),
    "Nature/Beach": (),
    "Nature/Sea": (),
    "Nature/River": (),
    "Nature/Mountain": (),
    "Nature/Forest": (),
    "Nature/Desert": (),
    "Nature/Waterfall": (),
    "Nature/Snow": (),
    "Nature/Flower": (),
    "Nature/Tree": (),
    "Nature/Sky": (),
    "Nature/Clouds": (),
    "Nature/Sunset": (),
    "Nature/Rainbow": (),
    "Nature/Landscape": (),
    "Places": (),
    "Places/Italy": (),
    "Places/Italy/Rome": (),
    "Places/Italy/Venice": (),
    "Places/France": (),
    "Places/France/Paris": (),
    "Places/Georgia": (),
    "Places/Home": (),
    "Places/Garden": (),
    "Places/Park": (),
    "Places/City": (),
    "Places/Street": (),
    "Buildings": (),
    "Buildings/Church": (),
    "Buildings/Castle": (),
    "Buildings/Bridge": (),
    "Buildings/Skyscraper": (),
    "Buildings/Lighthouse": (),
    "Buildings/House": (),
    "People": (),
    "People/Georgia": (),
    "People/Family": (),
    "People/Children": (),
    "People/Portrait": (),
    "People/Selfie": (),
    "Events": (),
    "Events/Wedding": (),
    "Events/Birthday": (),
    "Events/Christmas": ("xmas",),
    "Events/Concert": (),
    "Events/Party": (),
    "Food": (),
    "Food/Cake": (),
    "Food/Pizza": (),
    "Food/Coffee": (),
    "Food/Wine": (),
    "Transport": (),
    "Transport/Car": (),
    "Transport/Bicycle": ("bike",),
    "Transport/Train": (),
    "Transport/Boat": (),
    "Transport/Airplane": ("aeroplane", "plane"),
    "Activities": (),
    "Activities/Hiking": (),
    "Activities/Swimming": (),
    "Activities/Skiing": (),
    "Activities/Football": ("soccer",),
    "Time": (),
    "Time/Night": (),
    "Style": (),
    "Style/Black and white": ("b&w",),
    "Style/Reflection": (),
}


@dataclass(frozen=True)
class Case:
    term: str
    acceptable: tuple[str, ...]  # leaf names (unique in TAGS except Georgia) the term may map onto
    must_map: bool
    kind: str  # "rule", "synonym", "kind-of", "phrase", "negative"


def case(term: str, *acceptable: str, kind: str) -> Case:
    return Case(term, acceptable, kind != "negative", kind)


def negative(term: str, *acceptable_parents: str) -> Case:
    return Case(term, acceptable_parents, False, "negative")


CASES: list[Case] = [
    # The rules alone get these.
    case("dogs", "Dog", kind="rule"),
    case("Sunset", "Sunset", kind="rule"),
    case("mountains", "Mountain", kind="rule"),
    case("butterflies", "Butterfly", kind="rule"),
    case("churches", "Church", kind="rule"),
    case("bikes", "Bicycle", kind="rule"),
    case("xmas", "Christmas", kind="rule"),
    case("aeroplane", "Airplane", kind="rule"),
    case("CLOUDS", "Clouds", kind="rule"),
    case("cloud", "Clouds", kind="rule"),
    case("Places|Italy|Rome", "Rome", kind="rule"),
    case("trees", "Tree", kind="rule"),
    case("#beach", "Beach", kind="rule"),
    case("skyscrapers", "Skyscraper", kind="rule"),
    case("cows", "Cow", kind="rule"),
    case("child", "Children", kind="rule"),
    case("black and white", "Black and white", kind="rule"),
    case("reflections", "Reflection", kind="rule"),
    case("selfies", "Selfie", kind="rule"),
    case("waterfalls", "Waterfall", kind="rule"),
    case("soccer", "Football", kind="rule"),
    case("b&w", "Black and white", kind="rule"),
    # Near-synonyms: the same thing in other words.
    case("automobile", "Car", kind="synonym"),
    case("auto", "Car", kind="synonym"),
    case("seaside", "Beach", kind="synonym"),
    case("seashore", "Beach", kind="synonym"),
    case("sundown", "Sunset", kind="synonym"),
    case("kitty", "Cat", kind="synonym"),
    case("ocean", "Sea", kind="synonym"),
    case("doggy", "Dog", kind="synonym"),
    case("kids", "Children", kind="synonym"),
    case("aircraft", "Airplane", kind="synonym"),
    case("woods", "Forest", kind="synonym"),
    case("woodland", "Forest", kind="synonym"),
    case("blossom", "Flower", kind="synonym"),
    case("blooms", "Flower", kind="synonym"),
    case("snowfall", "Snow", kind="synonym"),
    case("high-rise", "Skyscraper", kind="synonym"),
    case("stream", "River", kind="synonym"),
    case("nighttime", "Night", kind="synonym"),
    case("cityscape", "City", kind="synonym"),
    case("urban", "City", kind="synonym"),
    case("monochrome", "Black and white", kind="synonym"),
    case("grayscale", "Black and white", kind="synonym"),
    case("scenery", "Landscape", kind="synonym"),
    case("trekking", "Hiking", kind="synonym"),
    case("hike", "Hiking", kind="synonym"),
    case("swim", "Swimming", kind="synonym"),
    case("ski", "Skiing", kind="synonym"),
    case("bday", "Birthday", kind="synonym"),
    case("gig", "Concert", kind="synonym"),
    case("live music", "Concert", kind="synonym"),
    case("headshot", "Portrait", kind="synonym"),
    case("vino", "Wine", kind="synonym"),
    case("person", "People", kind="synonym"),
    case("crowd", "People", kind="synonym"),
    case("group photo", "People", kind="synonym"),
    case("celebration", "Party", kind="synonym"),
    case("bicycling", "Bicycle", kind="synonym"),
    case("airplanes", "Airplane", kind="rule"),
    case("railway train", "Train", kind="synonym"),
    case("residence", "House", "Home", kind="synonym"),
    # Kinds of a tag the owner keeps general (see the docstring).
    case("puppy", "Dog", kind="kind-of"),
    case("kitten", "Cat", kind="kind-of"),
    case("hound", "Dog", kind="kind-of"),
    case("seagull", "Bird", kind="kind-of"),
    case("pigeon", "Bird", kind="kind-of"),
    case("parrot", "Bird", kind="kind-of"),
    case("duck", "Bird", kind="kind-of"),
    case("pony", "Horse", kind="kind-of"),
    case("stallion", "Horse", kind="kind-of"),
    case("cattle", "Cow", kind="kind-of"),
    case("cathedral", "Church", kind="kind-of"),
    case("chapel", "Church", kind="kind-of"),
    case("sailboat", "Boat", kind="kind-of"),
    case("yacht", "Boat", kind="kind-of"),
    case("canoe", "Boat", kind="kind-of"),
    case("jet", "Airplane", kind="kind-of"),
    case("sedan", "Car", kind="kind-of"),
    case("taxi", "Car", kind="kind-of"),
    case("roses", "Flower", kind="kind-of"),
    case("tulips", "Flower", kind="kind-of"),
    case("daisy", "Flower", kind="kind-of"),
    case("pine tree", "Tree", kind="kind-of"),
    case("oak", "Tree", kind="kind-of"),
    case("cupcake", "Cake", kind="kind-of"),
    case("cappuccino", "Coffee", kind="kind-of"),
    case("espresso", "Coffee", kind="kind-of"),
    case("red wine", "Wine", kind="kind-of"),
    case("toddler", "Children", kind="kind-of"),
    case("little girl", "Children", kind="kind-of"),
    case("cottage", "House", kind="kind-of"),
    case("peak", "Mountain", kind="kind-of"),
    # Phrases: any of the named tags is true.
    case("snowy mountain", "Mountain", "Snow", kind="phrase"),
    case("sunset beach", "Beach", "Sunset", kind="phrase"),
    case("birthday cake", "Cake", "Birthday", kind="phrase"),
    case("christmas tree", "Christmas", "Tree", kind="phrase"),
    case("wedding dress", "Wedding", kind="phrase"),
    case("family portrait", "Family", "Portrait", kind="phrase"),
    case("self-portrait", "Selfie", "Portrait", kind="phrase"),
    case("ocean waves", "Sea", kind="phrase"),
    case("blue sky", "Sky", kind="phrase"),
    case("night sky", "Night", "Sky", kind="phrase"),
    case("coffee cup", "Coffee", kind="phrase"),
    case("pizza slice", "Pizza", kind="phrase"),
    case("mountain range", "Mountain", kind="phrase"),
    case("city street", "Street", "City", kind="phrase"),
    case("stone bridge", "Bridge", kind="phrase"),
    # Hard negatives: their own tag is not in the vocabulary; a related one is.
    negative("sunrise", "Nature"),
    negative("dawn"),
    negative("lake", "Nature"),
    negative("pond", "Nature"),
    negative("tiger", "Animals"),
    negative("lion", "Animals"),
    negative("wolf", "Animals"),
    negative("fox", "Animals"),
    negative("sheep", "Animals"),
    negative("mosque", "Buildings"),
    negative("temple", "Buildings"),
    negative("palace", "Buildings"),
    negative("ruins"),
    negative("tower", "Buildings"),
    negative("evening", "Time"),
    negative("morning", "Time"),
    negative("afternoon", "Time"),
    negative("rain"),
    negative("storm"),
    negative("ice"),
    negative("frost"),
    negative("hill", "Nature"),
    negative("valley", "Nature"),
    negative("snowboarding", "Activities"),
    negative("running", "Activities"),
    negative("basketball", "Activities"),
    negative("rugby", "Activities"),
    negative("tea", "Food"),
    negative("beer", "Food"),
    negative("juice", "Food"),
    negative("pasta", "Food"),
    negative("bread", "Food"),
    negative("dessert", "Food"),
    negative("vineyard"),
    negative("motorcycle", "Transport"),
    negative("scooter", "Transport"),
    negative("bus", "Transport"),
    negative("truck", "Transport"),
    negative("tram", "Transport"),
    negative("helicopter", "Transport"),
    negative("funeral", "Events"),
    negative("anniversary", "Events"),
    negative("halloween", "Events"),
    negative("easter", "Events"),
    negative("graduation", "Events"),
    negative("playground"),
    negative("highway"),
    negative("village"),
    negative("friends", "People"),
    negative("couple", "People"),
    negative("milan", "Italy", "Places"),
    negative("florence", "Italy", "Places"),
    negative("london", "Places"),
    negative("spain", "Places"),
    negative("germany", "Places"),
    negative("tokyo", "Places"),
    negative("airport"),
    negative("harbor"),
    negative("sand"),
    negative("moon"),
    negative("sun"),
    negative("color"),
    negative("shadow"),
    negative("kitchen"),
]


def build_entries() -> list[Entry]:
    return [
        Entry(tag_id=i, path=path, name=path.rsplit("/", 1)[-1], aliases=aliases)
        for i, (path, aliases) in enumerate(TAGS.items(), start=1)
    ]


@dataclass
class Score:
    mapped: int = 0
    correct: int = 0
    wrong: int = 0
    must_map: int = 0
    found: int = 0  # correct mappings of terms that must map
    outcomes: list[tuple[bool, bool]] = field(default_factory=list)  # per case: (mapped, correct)

    @property
    def precision(self) -> float:
        return self.correct / self.mapped if self.mapped else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.must_map if self.must_map else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(vocabulary: Vocabulary, entries: list[Entry]) -> tuple[Score, list[str]]:
    names = {entry.tag_id: entry.name for entry in entries}
    result, wrong = Score(), []
    for c, match in zip(CASES, vocabulary.match_many([c.term for c in CASES]), strict=True):
        result.must_map += c.must_map
        name = names[match.tag_id] if match else ""
        result.outcomes.append((match is not None, name in c.acceptable))
        if match is None:
            continue
        result.mapped += 1
        if name in c.acceptable:
            result.correct += 1
            result.found += c.must_map
        else:
            result.wrong += 1
            wrong.append(f"{c.term} → {name} ({match.how} {match.similarity:.2f})")
    return result, wrong


def precision_holds(s: Score, resamples: int = 2000) -> float:
    """Share of bootstrap resamples of the cases in which precision stays ≥ MIN_PRECISION."""
    import numpy as np  # noqa: PLC0415

    outcomes = np.array(s.outcomes, dtype=bool)
    picks = np.random.default_rng(0).integers(0, len(outcomes), size=(resamples, len(outcomes)))
    mapped = outcomes[picks, 0].sum(axis=1)
    correct = (outcomes[picks, 0] & outcomes[picks, 1]).sum(axis=1)
    return float(np.mean(correct >= MIN_PRECISION * np.maximum(mapped, 1)))


class CachedEmbed:
    """Every text embedded once; counts calls and time."""

    def __init__(self, embed):
        self._embed = embed
        self._vectors: dict[str, object] = {}
        self.seconds = 0.0
        self.texts = 0

    def __call__(self, texts: list[str]):
        import numpy as np  # noqa: PLC0415

        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            start = time.perf_counter()
            vectors = self._embed(missing)
            self.seconds += time.perf_counter() - start
            self.texts += len(missing)
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9")
    parser.add_argument("--show-wrong", action="store_true", help="list every wrong mapping at every threshold")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]

    entries = build_entries()
    leaf_names = {e.name for e in entries}
    for c in CASES:
        assert set(c.acceptable) <= leaf_names, c
    kinds: dict[str, int] = {}
    for c in CASES:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"vocabulary: {len(entries)} tags; cases: {len(CASES)} "
          f"({', '.join(f'{n} {k}' for k, n in kinds.items())}); must map: {sum(c.must_map for c in CASES)}")

    from tagging import text_embeddings  # noqa: PLC0415

    start = time.perf_counter()
    text_embeddings.embed(["warm up"])
    load_seconds = time.perf_counter() - start
    embed = CachedEmbed(text_embeddings.embed)

    rows = [("rules only", *score(Vocabulary(entries), entries))]
    for threshold in thresholds:
        vocabulary = Vocabulary(entries, embed=embed, synonym_threshold=threshold)
        rows.append((f"rules + MiniLM ≥ {threshold:.2f}", *score(vocabulary, entries)))

    print(f"\nMiniLM: first call (imports + load) {load_seconds:.1f} s; "
          f"{embed.texts} texts embedded in {embed.seconds * 1000:.0f} ms "
          f"({embed.seconds * 1000 / max(embed.texts, 1):.2f} ms per text, batched)")
    single = []
    for term in ("seaside", "golden retriever", "snowy mountain"):
        t0 = time.perf_counter()
        text_embeddings.embed([term])
        single.append(time.perf_counter() - t0)
    print(f"one term per call: {min(single) * 1000:.1f} ms (best of 3)\n")

    print(f"| matcher | mappings | correct | wrong | precision | recall | F1 | P(precision ≥ {MIN_PRECISION}) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, s, _ in rows:
        print(f"| {label} | {s.mapped} | {s.correct} | {s.wrong} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} "
              f"| {precision_holds(s):.2f} |")

    eligible = [(label, s) for label, s, _ in rows[1:] if s.precision >= MIN_PRECISION]
    baseline = rows[0][1]
    if eligible:
        label, best = max(eligible, key=lambda row: row[1].f1)
        verdict = "helps" if best.f1 > baseline.f1 else "does not help"
        print(f"\nbest F1 with precision ≥ {MIN_PRECISION}: {label} (F1 {best.f1:.3f} vs rules only "
              f"{baseline.f1:.3f}): MiniLM {verdict}")
    else:
        print(f"\nno threshold reaches precision ≥ {MIN_PRECISION}: MiniLM does not help")

    configured = Vocabulary(entries, embed=embed) if SYNONYM_THRESHOLD is not None else None
    if configured is not None:
        s, _ = score(configured, entries)
        print(f"configured default SYNONYM_THRESHOLD = {SYNONYM_THRESHOLD}: precision {s.precision:.3f}, "
              f"recall {s.recall:.3f}, F1 {s.f1:.3f}")
    else:
        print("configured default SYNONYM_THRESHOLD = None: no synonym matches")

    for label, s, wrong in rows:
        if wrong and (args.show_wrong or s.precision >= MIN_PRECISION - 0.05):
            print(f"\nwrong at {label}: " + "; ".join(wrong))
    # Sanity: every term is usable text.
    assert all(normalize(c.term) for c in CASES)


if __name__ == "__main__":
    main()
