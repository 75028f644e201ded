"""How well and how fast the faces stage finds and groups faces, with dlib's real models.

Usage: .venv/bin/python bench/faces_bench.py [--quick] [--cnn 3]

Real portraits: the corpus's (astronaut, Grace Hopper, two men in the AVIF and
TIFF files) and the four of the ``face_recognition`` 1.3.0 source package's
tests (three photos of one man, one of another), fetched once through pip into
the temp folder (never copied into the repository). Each is put into
generated 1600 × 1200 "photos" (the viewer thumbnail the stage reads) on a
corpus background:

* scale: the face 24 … 256 px wide (never enlarged past 2× its own size);
* crop: tight around the head, and with half the face cut off;
* rotation: the portrait turned ±15° and ±30°;
* brightness: ×0.35, ×0.6, ×1.8.

Measured, in one run on one core:

1. detection recall per variant kind for several detector settings (HOG at a
   working size and upsampling; CNN on a few photos), their seconds per photo,
   and false detections (on the generated photos outside the pasted face, and
   on every corpus photo without a face); the detector's scores of true and
   false hits (for ``faces.MIN_SCORE``);
2. recall on the corpus photos with faces (labelled by hand: portraits, a
   wedding of three, two babies printed on nappy packs, a photographer in
   profile);
3. for the chosen setting, descriptor distances: the share of same-person pairs
   within each threshold ("together") and of different-person pairs beyond it
   ("apart"); then the real incremental clustering (``people.clustering``) in
   a throwaway database, in photo order, scored by pairs;
4. photos/s of the stage's work (decode the viewer thumbnail, detect,
   describe) against CLIP ViT-B-32 (random weights) embedding the 400 px grid
   thumbnails of the same photos, both single-threaded;
5. resident memory before and after the models are loaded and after the run.

Not run by ``make test``. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery.settings")
os.environ.setdefault("SHOEBOX_DB_NAME", "shoebox_faces_bench")

import argparse  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from measure import cpu_name  # noqa: E402
CORPUS = ROOT.parent / "shared" / "corpus"
WORK = Path(tempfile.gettempdir()) / "shoebox-faces-bench-v1"
SCENE = (1600, 1200)
MAX_PIXELS = 200_000_000

# Portraits: (name, file, person). The obama photos are three photos of one person.
CORPUS_PORTRAITS = [
    ("astronaut", "bundled_photo__astronaut_face.jpg", "collins"),
    ("hopper", "png__rgb_hopper.png", "hopper"),
    ("avif-man", "avif__exif_xmp.avif", "avif-man"),
    ("tiff-man", "icc__tiff_rgba_icc.tiff", "tiff-man"),
]
PIP_PORTRAITS = [("obama", "obama.jpg", "obama"), ("obama2", "obama2.jpg", "obama"),
                 ("obama3", "obama3.jpg", "obama"), ("biden", "biden.jpg", "biden")]
# Corpus photos with faces, counted by hand.
CORPUS_FACES = {
    "bundled_photo__astronaut_face.jpg": 1,
    "png__rgb_hopper.png": 1,
    "orientation__webp_exif_orient6.webp": 1,  # hopper again, turned by EXIF
    "avif__exif_xmp.avif": 1,
    "icc__tiff_rgba_icc.tiff": 1,
    "camera_jpeg__canon_digital_ixus_2001.jpg": 3,  # a wedding, faces ~5 % of the width
    "phone_jpeg__sony_xperia_d5803_xmp.jpg": 2,  # babies printed on nappy packs on a shelf
    "bundled_photo__cameraman_gray.jpg": 1,  # a face in three-quarter profile behind a camera
}
HOPPER_COPIES = {"wrongext__png_named.jpg", "other__photoshop.psd"}  # counted once, as the PNG
BACKGROUNDS = ["orientation__landscape_1.jpg", "bundled_photo__coffee.jpg", "gps__nikon_p6000_DSCN0010.jpg",
               "bundled_photo__rocket_launch.jpg", "phone_jpeg__iphone6_hdr_gps.jpg"]
SCALES = [24, 32, 40, 48, 64, 96, 160, 256]
ANGLES = [-30, -15, 15, 30]
BRIGHTNESS = [0.35, 0.6, 1.8]
HOG_SETTINGS = [(800, 0), (800, 1), (1200, 1), (1600, 0)]


def machine() -> str:
    cpu = cpu_name()
    import dlib

    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores usable, load {'%.2f %.2f %.2f' % os.getloadavg()}, "
            f"Python {platform.python_version()}, dlib {dlib.__version__} (CUDA {dlib.DLIB_USE_CUDA}), one thread")


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            values[key] = int(value.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def fetch_pip_photos() -> Path | None:
    folder = WORK / "face_recognition"
    images = folder / "images"
    if (images / "biden.jpg").is_file():
        return images
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "face_recognition==1.3.0", "--no-deps",
                           "--no-binary", ":all:", "-d", str(folder)], capture_output=True, text=True)
    archives = list(folder.glob("face_recognition-*.tar.gz"))
    if done.returncode or not archives:
        print(f"note: the face_recognition photos could not be fetched through pip: {done.stderr[-200:]}")
        return None
    images.mkdir(exist_ok=True)
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            if "/tests/test_images/" in member.name and member.name.endswith(".jpg") and member.isfile():
                (images / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return images


@dataclass
class Portrait:
    name: str
    person: str
    image: Image.Image
    box: tuple[int, int, int, int]  # the face in the portrait's pixels: left, top, right, bottom


@dataclass
class Scene:
    path: Path
    kind: str  # scale / crop / rotation / brightness
    detail: str
    portrait: Portrait
    truth: tuple[float, float, float, float]  # face box as fractions of the scene
    found: dict = field(default_factory=dict)  # setting -> list of FoundFace


def load_portraits(pip_images: Path | None) -> list[Portrait]:
    from gallery.imaging import open_upright
    from people import faces

    sources = [(n, CORPUS / f, p) for n, f, p in CORPUS_PORTRAITS]
    if pip_images:
        sources += [(n, pip_images / f, p) for n, f, p in PIP_PORTRAITS]
    portraits = []
    for name, path, person in sources:
        image = open_upright(path, target=1600, max_pixels=MAX_PIXELS)
        found = faces.detect(image, work_edge=1600, upsample=1)
        if not found:
            print(f"note: no face found in the portrait {name}; left out")
            continue
        x, y, w, h = found[0].box
        box = (round(x * image.width), round(y * image.height), round((x + w) * image.width),
               round((y + h) * image.height))
        portraits.append(Portrait(name, person, image, box))
    return portraits


def _background(index: int) -> Image.Image:
    from gallery.imaging import open_upright

    image = open_upright(CORPUS / BACKGROUNDS[index % len(BACKGROUNDS)], target=SCENE[0], max_pixels=MAX_PIXELS)
    return image.resize(SCENE, Image.Resampling.BILINEAR)


def _paste(background: Image.Image, piece: Image.Image, face_box, rng, mask=None):
    """Put ``piece`` somewhere on the background; returns the face box as fractions of the scene."""
    px = int(rng.integers(0, max(1, SCENE[0] - piece.width)))
    py = int(rng.integers(0, max(1, SCENE[1] - piece.height)))
    background.paste(piece, (px, py), mask)
    left, top, right, bottom = face_box
    return ((px + left) / SCENE[0], (py + top) / SCENE[1], (right - left) / SCENE[0], (bottom - top) / SCENE[1])


def make_scenes(portraits: list[Portrait]) -> list[Scene]:
    folder = WORK / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    scenes = []
    counter = itertools.count()

    def save(kind, detail, portrait, image, truth):
        path = folder / f"{portrait.name}-{kind}-{detail}.jpg"
        image.save(path, "JPEG", quality=88)
        scenes.append(Scene(path, kind, detail, portrait, truth))

    for portrait in portraits:
        image, (l, t, r, b) = portrait.image, portrait.box
        face_w = r - l
        for target in SCALES:
            factor = target / face_w
            if factor > 2.0 or factor * max(image.size) > max(SCENE):
                continue
            piece = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                                 Image.Resampling.LANCZOS)
            scene = _background(next(counter))
            box = tuple(round(v * factor) for v in (l, t, r, b))
            save("scale", f"{target}px", portrait, scene, _paste(scene, piece, box, rng))
        # Work at a face of ~160 px for the other kinds.
        factor = min(2.0, 160 / face_w, (0.9 * SCENE[1]) / max(image.size))
        base = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        fl, ft, fr, fb = (round(v * factor) for v in (l, t, r, b))
        fw, fh = fr - fl, fb - ft
        for detail, (cl, ct, cr, cb), truth_crop in (
            ("tight", (fl - fw // 4, ft - fh // 3, fr + fw // 4, fb + fh // 4), None),
            ("half-face", (fl + fw // 2, ft - fh // 3, fr + fw // 2, fb + fh // 4), (fl + fw // 2, ft, fr, fb)),
        ):
            cl, ct = max(0, cl), max(0, ct)
            piece = base.crop((cl, ct, min(base.width, cr), min(base.height, cb)))
            tl, tt, tr, tb = truth_crop or (fl, ft, fr, fb)
            scene = _background(next(counter))
            save("crop", detail, portrait, scene, _paste(scene, piece, (tl - cl, tt - ct, tr - cl, tb - ct), rng))
        for angle in ANGLES:
            turned = base.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
            mask = Image.new("L", base.size, 255).rotate(angle, expand=True)
            # The face's centre turns with the image; its box stays about the same size.
            cx, cy = (fl + fr) / 2 - base.width / 2, (ft + fb) / 2 - base.height / 2
            rad = np.deg2rad(angle)
            nx = cx * np.cos(rad) + cy * np.sin(rad) + turned.width / 2
            ny = -cx * np.sin(rad) + cy * np.cos(rad) + turned.height / 2
            box = (round(nx - fw / 2), round(ny - fh / 2), round(nx + fw / 2), round(ny + fh / 2))
            scene = _background(next(counter))
            save("rotation", f"{angle:+d}deg", portrait, scene, _paste(scene, turned, box, rng, mask))
        for level in BRIGHTNESS:
            piece = ImageEnhance.Brightness(base).enhance(level)
            scene = _background(next(counter))
            save("brightness", f"x{level}", portrait, scene, _paste(scene, piece, (fl, ft, fr, fb), rng))
    return scenes


def hits(found, truth) -> tuple[object | None, list]:
    """The detection that is the true face (if any) and the false ones."""
    from people.geometry import same_face

    true = [f for f in found if same_face(f.box, truth)]
    best = max(true, key=lambda f: f.score) if true else None
    return best, [f for f in found if f is not best and not same_face(f.box, truth)]


def detect_file(path: Path, **kwargs):
    """Decode and detect, as the stage does. Timed in CPU seconds by the callers: the machine is shared."""
    from gallery.imaging import open_upright
    from people import faces

    image = open_upright(path, target=1600, max_pixels=MAX_PIXELS)
    try:
        return faces.detect(image, **kwargs)
    finally:
        image.close()


def recall_table(scenes: list[Scene], settings: list[str]) -> None:
    kinds = ["scale", "crop", "rotation", "brightness"]
    print("\n1. detection recall on generated photos (true face found / photos), CPU seconds per photo")
    print(f"   {'setting':<16}" + "".join(f"{k:>12}" for k in kinds) + f"{'all':>12}{'false hits':>12}{'s/photo':>9}")
    for setting in settings:
        done = [s for s in scenes if setting in s.found]
        if not done:
            continue
        row, total, false = [], [0, 0], 0
        for kind in kinds:
            group = [s for s in done if s.kind == kind]
            found = sum(1 for s in group if hits(s.found[setting][0], s.truth)[0] is not None)
            row.append(f"{found}/{len(group)}" if group else "-")
            total[0] += found
            total[1] += len(group)
        false = sum(len(hits(s.found[setting][0], s.truth)[1]) for s in done)
        seconds = np.mean([s.found[setting][1] for s in done])
        print(f"   {setting:<16}" + "".join(f"{c:>12}" for c in row)
              + f"{total[0] / max(1, total[1]):>12.1%}{false:>12}{seconds:>9.2f}")
    print("   recall by face width in the 1600 px photo:")
    for setting in settings:
        by_width: dict[str, list[int]] = {}
        for s in scenes:
            if s.kind == "scale" and setting in s.found:
                by_width.setdefault(s.detail, []).append(1 if hits(s.found[setting][0], s.truth)[0] else 0)
        if by_width:
            print(f"   {setting:<16}", ", ".join(
                f"{w} {sum(v)}/{len(v)}" for w, v in sorted(by_width.items(), key=lambda item: int(item[0][:-2]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the chosen detector setting")
    parser.add_argument("--cnn", type=int, default=3, help="photos through the CNN detector (slow; default 3)")
    parser.add_argument("--clip-photos", type=int, default=32, help="photos for the CLIP comparison (default 32)")
    args = parser.parse_args()

    rss_start = rss_mb()[0]
    import django

    django.setup()
    from people import faces

    print(f"machine: {machine()}")
    t = time.perf_counter()
    faces.load()
    load_seconds = time.perf_counter() - t
    rss_models = rss_mb()[0]

    pip_images = fetch_pip_photos()
    portraits = load_portraits(pip_images)
    scenes = make_scenes(portraits)
    print(f"input:   {len(portraits)} portraits ({', '.join(p.name for p in portraits)}), "
          f"{len(scenes)} generated {SCENE[0]}x{SCENE[1]} photos")

    chosen = f"hog {faces.WORK_EDGE}/{faces.UPSAMPLE}"
    settings = [chosen] + ([] if args.quick else [f"hog {e}/{u}" for e, u in HOG_SETTINGS
                                                   if (e, u) != (faces.WORK_EDGE, faces.UPSAMPLE)])
    scores_true, scores_false = [], []
    for setting in settings:
        edge, up = (int(v) for v in setting.split()[1].split("/"))
        for scene in scenes:
            start = time.process_time()
            found = detect_file(scene.path, work_edge=edge, upsample=up, min_score=-0.5)
            seconds = time.process_time() - start
            if setting == chosen:
                best, false = hits(found, scene.truth)
                scores_true += [best.score] if best else []
                scores_false += [f.score for f in false]
            scene.found[setting] = ([f for f in found if f.score >= faces.MIN_SCORE], seconds)
    if args.cnn:
        sample = [s for s in scenes if s.kind == "rotation"][: args.cnn]
        for scene in sample:
            start = time.process_time()
            found = detect_file(scene.path, detector=faces.CNN, work_edge=800, upsample=0)
            scene.found["cnn 800/0"] = (found, time.process_time() - start)
        settings.append("cnn 800/0")
    recall_table(scenes, settings)

    # False hits on the corpus photos without faces.
    from gallery.imaging import BrokenImage, SkipFile

    corpus_found = {}
    for path in sorted(CORPUS.iterdir()):
        if path.suffix in {".tsv", ".md"} or path.name in HOPPER_COPIES:
            continue
        try:
            corpus_found[path.name] = detect_file(path, min_score=-0.5)
        except (BrokenImage, SkipFile, OSError, ValueError):
            continue
    faceless = {n: f for n, f in corpus_found.items() if n not in CORPUS_FACES}
    for found in faceless.values():
        scores_false += [f.score for f in found]
    print(f"\n   false hits on {len(faceless)} corpus photos without faces at MIN_SCORE {faces.MIN_SCORE}: "
          f"{sum(1 for fs in faceless.values() for f in fs if f.score >= faces.MIN_SCORE)} "
          f"({', '.join(n for n, fs in faceless.items() if any(f.score >= faces.MIN_SCORE for f in fs)) or 'none'})")
    print(f"   detector scores ({chosen}): true faces min {min(scores_true):.2f}, 5th pct "
          f"{np.percentile(scores_true, 5):.2f}, median {np.median(scores_true):.2f}; false hits max "
          f"{max(scores_false, default=float('nan')):.2f}, 95th pct "
          f"{np.percentile(scores_false, 95) if scores_false else float('nan'):.2f} ({len(scores_false)} below -0.5 cut)")
    for cut in (0.0, 0.2, 0.3, 0.5):
        print(f"     min score {cut:.1f}: true faces kept {np.mean(np.array(scores_true) >= cut):.1%}, "
              f"false hits kept {sum(1 for s in scores_false if s >= cut)}")

    print("\n2. corpus photos with faces (labelled by hand): found / there, at the chosen setting")
    total = [0, 0]
    for name, expected in CORPUS_FACES.items():
        found = [f for f in corpus_found.get(name, []) if f.score >= faces.MIN_SCORE]
        total[0] += min(len(found), expected)
        total[1] += expected
        print(f"   {name:<44} {len(found)}/{expected}")
    print(f"   recall {total[0]}/{total[1]} = {total[0] / total[1]:.0%}")

    # 3. Grouping: descriptor distances and the real clustering.
    chosen_faces = []
    for scene in scenes:
        best, _ = hits(scene.found[chosen][0], scene.truth)
        if best is not None:
            chosen_faces.append((scene, best))
    print(f"\n3. grouping: {len(chosen_faces)} detected faces of {len({s.portrait.person for s, _ in chosen_faces})} "
          "people (the generated photos)")
    vectors = np.stack([f.embedding for _, f in chosen_faces])
    people = np.array([s.portrait.person for s, _ in chosen_faces])
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=-1)
    upper = np.triu_indices(len(chosen_faces), 1)
    same = (people[:, None] == people[None, :])[upper]
    d = distances[upper]
    print(f"   same person: {same.sum()} pairs, distance median {np.median(d[same]):.3f}, 99th pct "
          f"{np.percentile(d[same], 99):.3f}, max {d[same].max():.3f}")
    print(f"   different people: {(~same).sum()} pairs, distance min {d[~same].min():.3f}, 1st pct "
          f"{np.percentile(d[~same], 1):.3f}, median {np.median(d[~same]):.3f}")
    from people import clustering

    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6):
        mark = "  <- JOIN_DISTANCE" if threshold == clustering.JOIN_DISTANCE else ""
        print(f"   threshold {threshold:.2f}: together {np.mean(d[same] <= threshold):.1%} of same-person pairs, "
              f"apart {np.mean(d[~same] > threshold):.1%} of different-people pairs{mark}")
    cluster_in_database(chosen_faces)

    rounds = []
    for _ in range(3):  # the same photos again: memory that keeps growing would show here
        for scene in scenes[:40]:
            detect_file(scene.path)
        rounds.append(f"{rss_mb()[0]:.0f}")
    rss_end, peak = rss_mb()
    memory = (f"\n5. memory: {rss_start:.0f} MB at start, {rss_models:.0f} MB with the face models loaded "
              f"(+{rss_models - rss_start:.0f} MB, {load_seconds:.1f} s), {rss_end:.0f} MB after "
              f"{sum(len(s.found) for s in scenes)} detections and the clustering (peak {peak:.0f} MB; "
              "the portraits and Django included, CLIP not yet loaded); after three more rounds of 40 photos: "
              f"{' → '.join(rounds)} MB")
    # 4. Speed against CLIP.
    speed(scenes, args.clip_photos)
    print(memory)


def cluster_in_database(chosen_faces) -> None:
    """The real incremental rule (people.clustering.assign) in a throwaway database, photo by photo."""
    import benchdb
    from django.utils import timezone

    from gallery.models import Photo
    from people import clustering
    from people.models import Face, Person

    params = benchdb.create()
    try:
        rows = []
        for i, (scene, face) in enumerate(chosen_faces):
            photo = Photo.objects.create(content_hash=f"{i:064x}", file_size=1, format="JPEG",
                                         mime_type="image/jpeg", width=SCENE[0], height=SCENE[1],
                                         taken_at=timezone.now(), taken_at_source="bench")
            rows.append(Face.objects.create(photo=photo, x=face.box[0], y=face.box[1], w=face.box[2],
                                            h=face.box[3], embedding=face.embedding.tolist(), size=face.size))
        order = np.random.default_rng(3).permutation(len(rows))  # photos arrive in no particular order
        start = time.perf_counter()
        for i in order:
            changes = clustering.assign([Face.objects.get(pk=rows[i].pk)])
            Person.refresh(changes.persons)
        seconds = (time.perf_counter() - start) / len(rows)
        person_of = dict(Face.objects.values_list("pk", "person_id"))
        labels = [s.portrait.person for s, _ in chosen_faces]
        pairs_same = pairs_same_together = pairs_diff = pairs_diff_merged = 0
        for a, b in itertools.combinations(range(len(rows)), 2):
            pa, pb = person_of[rows[a].pk], person_of[rows[b].pk]
            together = pa is not None and pa == pb
            if labels[a] == labels[b]:
                pairs_same += 1
                pairs_same_together += together
            else:
                pairs_diff += 1
                pairs_diff_merged += together
        alone = sum(1 for r in rows if person_of[r.pk] is None)
        persons = Person.objects.filter(face_count__gt=0)
        print(f"   incremental clustering at {clustering.JOIN_DISTANCE}: {persons.count()} persons for "
              f"{len(set(labels))} people; same-person pairs together {pairs_same_together / pairs_same:.1%}, "
              f"different-people pairs apart {1 - pairs_diff_merged / pairs_diff:.2%}; {alone} faces alone; "
              f"{seconds * 1000:.1f} ms per face")
        start = time.perf_counter()
        result = clustering.recluster()
        print(f"   recluster_faces: {result['persons']} persons, {result['assigned']}/{result['faces']} faces in one, "
              f"{time.perf_counter() - start:.2f} s")
    finally:
        benchdb.drop(params)


def speed(scenes: list[Scene], clip_photos: int) -> None:
    import logging

    import open_clip
    import torch

    from tagging import clip

    torch.set_num_threads(1)
    photos = [s.path for s in scenes[:clip_photos]]
    grid = []
    for path in photos:  # the 400 px grid thumbnails CLIP reads in the embedding stage
        small = path.with_name(path.stem + "-grid.jpg")
        if not small.exists():
            with Image.open(path) as image:
                image.thumbnail((400, 400))
                image.save(small, "JPEG", quality=85)
        grid.append(small)
    start, wall = time.process_time(), time.perf_counter()
    for path in photos:
        detect_file(path)
    face_seconds = (time.process_time() - start) / len(photos)
    face_wall = (time.perf_counter() - wall) / len(photos)

    logging.getLogger().setLevel(logging.ERROR)
    arch = "ViT-B-32"
    torch_model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=None)
    torch_model.eval()
    model = clip.ClipModel(clip.ClipSpec("pretrained", "random-weights", arch), f"{arch}:random-weights",
                           torch_model, transform, open_clip.get_tokenizer(arch))
    list(clip.embed_files(model, grid[:4], batch_size=4, max_pixels=MAX_PIXELS, decode_threads=1))  # warm
    start, wall = time.process_time(), time.perf_counter()
    list(clip.embed_files(model, grid, batch_size=16, max_pixels=MAX_PIXELS, decode_threads=1))
    clip_seconds = (time.process_time() - start) / len(grid)
    clip_wall = (time.perf_counter() - wall) / len(grid)
    print(f"\n4. speed, one thread, {len(photos)} photos, CPU time: faces stage work {1 / face_seconds:.2f} photos/s "
          f"({face_seconds * 1000:.0f} ms each: decode the 1600 px thumbnail, detect, describe); "
          f"CLIP ViT-B-32 {1 / clip_seconds:.2f} photos/s ({clip_seconds * 1000:.0f} ms each, 400 px thumbnails, "
          f"batch 16); faces cost {face_seconds / clip_seconds:.1f}x CLIP per photo "
          f"(wall clock on the shared machine: {face_wall * 1000:.0f} vs {clip_wall * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
