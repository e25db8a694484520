"""PBC (Acevedo et al. 2020): 17,092 JPEGs of peripheral blood cells (360x363) in eight classes, laid out as
`<data root>/pbc/<class>/*.jpg`; or a homework npz of the same classes (`images` (N, 96, 96, 3), `labels` 0..7).

`load_data` draws the classes in given proportions (a study's, e.g. the an2dl homework's cleaned set) and decodes
them at one size; `fetch_pbc` downloads the set from Mendeley Data (doi:10.17632/snkd93bnjr.1, CC BY 4.0).
"""

import numpy as np

DATASET_ID = "pbc"
# The staged PBC folders, in the loader's (sorted) order; the an2dl homework's labels 0..7 name the same cell types.
CLASS_NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
# PBC's published per-class counts (Acevedo et al. 2020; ../shared/data/pbc/PROVENANCE.md).
PBC_COUNTS = {
    "basophil": 1218,
    "eosinophil": 3117,
    "erythroblast": 1551,
    "ig": 2895,
    "lymphocyte": 1214,
    "monocyte": 1420,
    "neutrophil": 3330,
    "platelet": 2348,
}
PBC_URL = "https://data.mendeley.com/public-api/zip/snkd93bnjr/download/1"  # Mendeley Data's zip of version 1


def draw_counts(available, largest_class=None, target=None):
    """{class: images to draw} in the proportions of `target` (default `PBC_COUNTS`).

    Args:
        available: {class: images there are}.
        largest_class: images of the largest target class; None takes as many as every class allows.
        target: {class: count}, the proportions to follow.
    """
    target = target or PBC_COUNTS
    scale = min(available[name] / count for name, count in target.items())
    if largest_class is not None:
        scale = min(scale, largest_class / max(target.values()))
    return {name: min(available[name], max(1, round(count * scale))) for name, count in target.items()}


def load_data(data_dir=None, npz=None, image_size=(96, 96), largest_class=None, seed=0, target=None):
    """The images to train on, at `image_size`, and how they were drawn.

    PBC JPEGs: the classes are drawn (seeded) in the proportions of `target` (`draw_counts`) and resized exactly as
    a saved model's `ImagePreprocessing` resizes a raw file. An npz: every image, or a stratified subset of the size
    PBC would give for `largest_class`.

    Returns:
        (ImageSet with decoded images, {"source", "available", "drawn", "not drawn", "target"}).
    """
    from medcnn.data.loaders import decode_set, load_folders, load_npz
    from medcnn.data.paths import resolve_dataset

    target = target or PBC_COUNTS
    if npz is not None:
        from medcnn.data.splits import stratified_subset

        data = load_npz(npz, CLASS_NAMES)
        available = data.class_counts()
        size = None if largest_class is None else sum(draw_counts(PBC_COUNTS, largest_class, target).values())
        data = data.subset(stratified_subset(data.labels, size, seed))
        if tuple(data.images.shape[1:3]) != tuple(image_size) or data.images.shape[-1] != 3:
            from medcnn.preprocessing import resize_pixels

            rgb = np.repeat(data.images, 3, axis=-1) if data.images.shape[-1] == 1 else data.images[..., :3]
            data.images = resize_pixels(rgb, image_size)
        source = "npz"
    else:
        listed = load_folders(resolve_dataset(DATASET_ID, data_dir), decode=False, class_order=CLASS_NAMES)
        available = listed.class_counts()
        counts = draw_counts(available, largest_class, target)
        rng = np.random.default_rng(seed)
        picked = [
            rng.choice(np.flatnonzero(listed.labels == label), counts[name], replace=False)
            for label, name in enumerate(CLASS_NAMES)
        ]
        data = decode_set(listed.subset(np.sort(np.concatenate(picked))), tuple(image_size), "rgb", skip_bad=True)
        source = DATASET_ID
    drawn = data.class_counts()
    info = {
        "source": source,
        "available": available,
        "drawn": drawn,
        "not drawn": {name: available[name] - drawn[name] for name in CLASS_NAMES},
        "target": target,
    }
    return data, info


def fetch_pbc(root, url=PBC_URL, archive=None):
    """Download PBC from Mendeley Data (CC BY 4.0) and lay it out as `<root>/pbc/<class>/*.jpg`; returns that folder.

    Mendeley's dataset zip holds `PBC_dataset_normal_DIB.zip`, which holds one folder per class; zips inside zips are
    opened until the eight class folders appear. `archive`: an already downloaded zip (then nothing is downloaded).
    """
    import shutil
    import urllib.request
    import zipfile
    from pathlib import Path

    root = Path(root)
    work = root / "_pbc_download"
    work.mkdir(parents=True, exist_ok=True)
    if archive is None:
        archive = work / "pbc.zip"
        urllib.request.urlretrieve(url, archive)
    pending = [Path(archive)]
    while pending:
        with zipfile.ZipFile(pending.pop()) as opened:
            target = work / f"part{len(list(work.iterdir()))}"
            opened.extractall(target)
        pending += [path for path in target.rglob("*.zip") if "__MACOSX" not in path.parts]
    found = [
        folder
        for folder in work.rglob("*")
        if folder.is_dir() and "__MACOSX" not in folder.parts and {c.name for c in folder.iterdir()} >= set(CLASS_NAMES)
    ]
    if not found:
        raise FileNotFoundError(f"No folder with the class folders {CLASS_NAMES} in {archive}.")
    destination = root / DATASET_ID
    if destination.exists():
        shutil.rmtree(destination)
    shutil.move(str(found[0]), destination)
    shutil.rmtree(work)
    return destination
