"""Tests for medcnn.data.validate: the report on the staged data, all problems collected, the CLI's exit codes."""

import argparse
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medcnn.errors import DataError
from medcnn.data.validate import add_arguments, detect_layout, run, validate_dataset

RNG = np.random.default_rng(2)


def write_image(path, size=(8, 6), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_module_docstring_is_the_help():
    import medcnn.data.validate

    assert medcnn.data.validate.__doc__.splitlines()[0].startswith("Check a data set")


def test_staged_all4_report(shared_data, capsys):
    code = run(parse([str(shared_data / "all4" / "Original")]))
    text = capsys.readouterr().out
    assert code == 0
    for line in (
        "Layout: folders",
        "Classes (4), 3061 readable images",
        "Benign     474",
        "Early      926",
        "Pre        905",
        "Pro        756",
        "224 x 224: 3061",
        "Modes: RGB 3061",
        "Formats: JPEG 3061",
        "Problems: 0",
        "Usable: yes",
    ):
        assert line in text, line
    # PROVENANCE.md: 40 byte-identical pairs of consecutive Pro images in the full set; 35 of them are staged.
    assert "Exact duplicates: 35 group(s), 35 redundant copies" in text
    assert "Pro/WBC-Malignant-Pro-188.jpg = Pro/WBC-Malignant-Pro-189.jpg" in text


def test_staged_cnmc_sample_by_id(shared_data):
    report = validate_dataset("cnmc-sample")
    assert report.layout == "cnmc" and report.usable
    assert report.class_counts == {"all": 3, "hem": 3}
    assert report.patient_counts == {"1": {"all": 3}, "H6": {"hem": 3}}
    assert report.sizes == {(450, 450): 6} and report.formats == {"BMP": 6}


def make_fold_tree(root):
    for fold, (ill, healthy) in enumerate([("1", "H2"), ("3", "h4")]):
        for cell in range(2):
            write_image(root / f"fold_{fold}" / "all" / f"UID_{ill}_{cell}_1_all.bmp")
            write_image(root / f"fold_{fold}" / "hem" / f"UID_{healthy}_{cell}_1_hem.bmp")
    return root


def test_cnmc_folds_and_patients(tmp_path):
    report = validate_dataset(make_fold_tree(tmp_path))
    assert report.layout == "cnmc" and report.usable
    assert report.fold_counts == {0: {"all": 2, "hem": 2}, 1: {"all": 2, "hem": 2}}
    assert report.patient_counts == {"1": {"all": 2}, "3": {"all": 2}, "H2": {"hem": 2}, "H4": {"hem": 2}}
    assert "fold 1: all 2, hem 2" in report.to_text()


def test_collects_every_problem(tmp_path):
    for i in range(3):
        write_image(tmp_path / "a" / f"a{i}.png")
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "a" / "text.jpg").write_text("hello")
    good = write_image(tmp_path / "b" / "b0.png")
    (tmp_path / "b" / "cut.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "c").mkdir()
    (tmp_path / "a" / ".DS_Store").write_bytes(b"junk")
    report = validate_dataset(tmp_path)
    assert not report.usable
    problems = {path.split("/")[-1]: message for path, message in report.problems}
    assert set(problems) == {"empty.png", "text.jpg", "cut.png", "c"}
    assert "empty (0 bytes)" in problems["empty.png"]
    assert "not an image file" in problems["text.jpg"]
    assert "truncated" in problems["cut.png"]
    assert "No images found for class 'c'" in problems["c"]
    assert report.class_counts == {"a": 3, "b": 1, "c": 0}
    assert report.n_files == 7


def test_duplicates_and_notes(tmp_path):
    first = write_image(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "y.png").write_bytes(first.read_bytes())
    (tmp_path / "b" / "z.png").parent.mkdir()
    (tmp_path / "b" / "z.png").write_bytes(first.read_bytes())
    write_image(tmp_path / "b" / "w.png", size=(5, 5), mode="L")
    (tmp_path / "b" / "readme.txt").write_text("labels by hand")
    report = validate_dataset(tmp_path)
    assert report.usable
    assert report.duplicates == [["a/x.png", "a/y.png", "b/z.png"]]
    assert report.sizes == {(8, 6): 3, (5, 5): 1} and report.modes == {"RGB": 3, "L": 1}
    notes = " ".join(report.notes)
    assert "identical images carry different labels" in notes
    assert "readme.txt" in notes and "2 different image sizes" in notes


def test_npz_report_and_duplicates(tmp_path):
    images = RNG.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    images[3] = images[0]
    np.savez(tmp_path / "set.npz", images=images, labels=np.array([0, 1, 1, 0, 2]))
    report = validate_dataset(tmp_path / "set.npz")
    assert report.layout == "npz" and report.usable
    assert report.class_counts == {"0": 2, "1": 2, "2": 1}
    assert report.duplicates == [["index 0", "index 3"]]
    assert report.sizes == {(4, 4): 5} and report.modes == {"uint8, 3 channel(s)": 5}


def test_npz_collects_every_problem(tmp_path):
    images = np.zeros((4, 4, 4, 3), np.float32)
    images[1, 0, 0, 0] = np.nan
    np.savez(tmp_path / "bad.npz", images=images, labels=np.array([0, -1, 1]))
    report = validate_dataset(tmp_path / "bad.npz")
    messages = " | ".join(message for _, message in report.problems)
    assert not report.usable
    assert "NaN or inf" in messages and "4 images but 3 labels" in messages and ">= 0; found -1" in messages


@pytest.mark.parametrize(
    "build, layout",
    [
        (lambda r: (np.savez(r / "x.npz", images=np.zeros((2, 2, 2)), labels=[0, 1]), r / "x.npz")[1], "npz"),
        (
            lambda r: (write_image(r / "all" / "UID_1_1_1_all.png"), write_image(r / "hem" / "UID_H1_1_1_hem.png"), r)[
                2
            ],
            "cnmc",
        ),
        (lambda r: make_fold_tree(r), "cnmc"),
        (lambda r: (write_image(r / "all" / "cell1.png"), write_image(r / "hem" / "cell2.png"), r)[2], "folders"),
        (lambda r: (write_image(r / "cats" / "a.png"), write_image(r / "dogs" / "b.png"), r)[2], "folders"),
    ],
    ids=["npz", "cnmc_flat", "cnmc_folds", "all_hem_without_uid", "class_folders"],
)
def test_detect_layout(tmp_path, build, layout):
    assert detect_layout(build(tmp_path)) == layout


def test_run_returns_one_for_bad_data_without_traceback(tmp_path, capsys):
    write_image(tmp_path / "a" / "x.png")
    write_image(tmp_path / "b" / "y.png")
    (tmp_path / "b" / "broken.png").write_text("nope")
    assert run(parse([str(tmp_path)])) == 1
    out = capsys.readouterr().out
    assert "b/broken.png: not an image file" in out and "Usable: NO" in out


def test_run_missing_path(tmp_path, capsys):
    assert run(parse([str(tmp_path / "nothing")])) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_layout_forced_wrong_is_reported(tmp_path, capsys):
    write_image(tmp_path / "cats" / "a.png")
    write_image(tmp_path / "dogs" / "b.png")
    assert run(parse([str(tmp_path), "--layout", "cnmc"])) == 1
    assert "'all' is missing" in capsys.readouterr().out


def test_image_size_option(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    write_image(tmp_path / "b" / "y.png")
    args = parse([str(tmp_path), "--image-size", "4", "4"])
    assert args.image_size == [4, 4] and run(args) == 0
    with pytest.raises(ValueError, match="Received: layout='tree'"):
        validate_dataset(tmp_path, layout="tree")


def test_missing_path_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        validate_dataset(tmp_path / "nothing")


def test_command_line(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    write_image(tmp_path / "b" / "y.png")
    (tmp_path / "b" / "z.png").write_bytes(b"")
    command = [sys.executable, "-m", "medcnn", "validate", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "b/z.png: the file is empty (0 bytes)" in result.stdout


# --------------------------------------------------------------------------------------------------------------
# Advice that works for the problem found

SKIP_BAD_CANNOT = (
    "Usable: NO. Fix the problems above as each line says; skip_bad=True only leaves out unreadable image files "
    "and cannot fix these."
)


def test_empty_class_folder_advice(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    write_image(tmp_path / "b" / "y.png")
    (tmp_path / "c").mkdir()
    report = validate_dataset(tmp_path)
    assert report.problems == [
        (
            str(tmp_path / "c"),
            f"No images found for class 'c' in {tmp_path / 'c'}. Expected at least one .jpg, .jpeg, .png, .bmp, "
            ".tif, .tiff file in each class folder (found folders: 'a', 'b', 'c'). Add images to it, or remove the "
            "folder if it is not a class.",
        )
    ]
    assert report.problem_kinds == ["empty_class"]
    assert report.advice() == SKIP_BAD_CANNOT
    assert report.to_text().endswith("\n" + SKIP_BAD_CANNOT)


def test_a_file_that_is_not_npz(tmp_path):
    path = write_image(tmp_path / "a" / "x.png")
    report = validate_dataset(path)
    assert report.problems == [
        (
            str(path),
            f"{path}: a file, not a folder. Pass its folder (the one holding the class sub-folders), or an .npz "
            "file (load_npz).",
        )
    ]
    assert report.advice() == SKIP_BAD_CANNOT


def test_bad_files_advice_is_skip_bad(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    write_image(tmp_path / "b" / "y.png")
    (tmp_path / "b" / "z.png").write_bytes(b"")
    report = validate_dataset(tmp_path)
    assert report.problem_kinds == ["empty_file"]
    assert report.advice() == (
        "Usable: NO. Fix or remove the files above, or load with skip_bad=True to leave them out."
    )


def test_class_with_only_bad_files_advice(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.png").write_text("not a png")
    report = validate_dataset(tmp_path)
    assert report.class_counts == {"a": 1, "b": 0}
    assert report.advice() == (
        "Usable: NO. No image of class(es) ['b'] is readable: replace those files (skip_bad=True would leave the "
        "class empty)."
    )


def test_bad_npz_advice(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 4, 4, 3), np.uint8), labels=np.array([0, 1, 1]))
    report = validate_dataset(tmp_path / "bad.npz")
    assert report.problem_kinds == ["length_mismatch"]
    assert report.advice() == SKIP_BAD_CANNOT
