"""medcnn.data.image_sets: images decoded again at another size, offline copies after the originals, images as
files."""

import numpy as np

from medcnn.data import image_sets
from medcnn.data.loaders import ImageSet, load_folders


def _folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, (30, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{name}{index}.png")
    return tmp_path


def test_images_at_decodes_the_files_again_as_the_loader_does(tmp_path):
    small = load_folders(_folders(tmp_path), image_size=(16, 16))
    larger = load_folders(tmp_path, image_size=(24, 20))
    subset = small.subset(np.array([4, 1, 2]))  # e.g. after cleaning: its own files, in its order
    again = image_sets.images_at(subset, (24, 20))
    assert again.shape == (3, 24, 20, 3) and again.dtype == np.float32
    np.testing.assert_allclose(again, larger.images[[4, 1, 2]], atol=1e-4)


def test_images_at_resizes_in_memory_images():
    data = ImageSet(labels=np.zeros(2, int), class_names=["a"], images=np.full((2, 8, 8, 3), 7.0, "float32"))
    resized = image_sets.images_at(data, (12, 12))
    assert resized.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(resized, 7.0, atol=1e-4)  # a flat image stays flat


def test_copies_follow_the_originals_and_a_seed_fixes_them():
    from medcnn.augment import rotation_flip_zoom_brightness_noise

    images = np.random.default_rng(1).uniform(0, 255, (3, 12, 12, 3)).astype("float32")
    layer = rotation_flip_zoom_brightness_noise(value_range=(0, 255))
    every = image_sets.images_with_copies(images, 2, layer, seed=5)
    assert every.shape == (9, 12, 12, 3)
    np.testing.assert_array_equal(every[:3], images)
    np.testing.assert_array_equal(every, image_sets.images_with_copies(images, 2, layer, seed=5))
    assert not np.allclose(every[3:], image_sets.images_with_copies(images, 2, layer, seed=6)[3:])
    np.testing.assert_array_equal(image_sets.images_with_copies(images, 0, layer), images)


def test_as_files_names_the_sources_or_writes_pngs(tmp_path):
    data = load_folders(_folders(tmp_path / "src"), image_size=(16, 16))
    assert image_sets.as_files(data, [0, 5], tmp_path / "out") == [str(data.paths[0]), str(data.paths[5])]
    memory = ImageSet(labels=np.array([0, 1]), class_names=["x", "y"], images=np.full((2, 4, 4, 3), 300.0))
    files = image_sets.as_files(memory, [1], tmp_path / "out")
    assert [f.split("/")[-1] for f in files] == ["image00001_y.png"]
    from PIL import Image

    assert np.asarray(Image.open(files[0])).max() == 255  # clipped to uint8


def test_image_set_digest_names_the_files_or_the_pixels(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((4, 4, 3), 7 if name == "a" else 9, np.uint8)).save(tmp_path / name / "x.png")
    files = load_folders(tmp_path, decode=False)
    assert image_sets.image_set_digest(files) == image_sets.image_set_digest(load_folders(tmp_path, decode=False))
    pixels = ImageSet(labels=np.array([0, 1]), class_names=["a", "b"], images=np.zeros((2, 4, 4, 3), np.uint8))
    changed = ImageSet(labels=np.array([0, 1]), class_names=["a", "b"], images=np.ones((2, 4, 4, 3), np.uint8))
    assert image_sets.image_set_digest(pixels) != image_sets.image_set_digest(changed)
    assert len({image_sets.image_set_digest(files), image_sets.image_set_digest(pixels)}) == 2
