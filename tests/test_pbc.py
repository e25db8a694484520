"""medcnn.data.pbc: PBC's classes drawn in given proportions, the homework npz, and the download's layout."""

import zipfile

import numpy as np

from medcnn.data import pbc


def test_draw_counts_follow_pbc_proportions_by_default():
    available = {name: 400 for name in pbc.CLASS_NAMES}
    drawn = pbc.draw_counts(available)
    assert drawn["neutrophil"] == 400 and drawn["lymphocyte"] == round(1214 * 400 / 3330)
    assert pbc.draw_counts(available, largest_class=100)["neutrophil"] == 100
    assert pbc.draw_counts(available, target={"basophil": 1, "ig": 2}) == {"basophil": 200, "ig": 400}


def test_load_data_draws_the_staged_pbc_with_a_fixed_seed(shared_data):
    data, info = pbc.load_data(image_size=(96, 96), largest_class=8, seed=1)
    expected = pbc.draw_counts(info["available"], largest_class=8)
    assert data.class_counts() == expected == info["drawn"] and info["source"] == "pbc"
    assert all(info["not drawn"][n] == info["available"][n] - expected[n] for n in pbc.CLASS_NAMES)
    again, _ = pbc.load_data(image_size=(96, 96), largest_class=8, seed=1)
    assert again.paths == data.paths  # the seed fixes the draw


def test_load_data_reads_a_homework_npz(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(pbc.CLASS_NAMES)), 6)
    path = tmp_path / "training_set.npz"
    np.savez(path, images=rng.integers(0, 255, (len(labels), 64, 64, 3), dtype=np.uint8), labels=labels[:, None])
    data, info = pbc.load_data(npz=path, image_size=(96, 96))
    assert info["source"] == "npz" and data.images.shape == (len(labels), 96, 96, 3) and data.paths is None
    assert data.class_counts() == {name: 6 for name in pbc.CLASS_NAMES}


def test_fetch_pbc_opens_zips_inside_zips(tmp_path):
    inner = tmp_path / "PBC_dataset_normal_DIB.zip"
    with zipfile.ZipFile(inner, "w") as archive:
        for name in pbc.CLASS_NAMES:
            archive.writestr(f"PBC_dataset_normal_DIB/{name}/{name[:2].upper()}_1.jpg", b"jpeg bytes")
    outer = tmp_path / "snkd93bnjr-1.zip"
    with zipfile.ZipFile(outer, "w") as archive:
        archive.write(inner, "PBC_dataset_normal_DIB.zip")
    folder = pbc.fetch_pbc(tmp_path / "data", archive=outer)
    assert folder == tmp_path / "data" / "pbc"
    assert sorted(p.name for p in folder.iterdir()) == sorted(pbc.CLASS_NAMES)
    assert (folder / "ig" / "IG_1.jpg").read_bytes() == b"jpeg bytes"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["pbc"]
