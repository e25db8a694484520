"""What the runs of one data set read when they differ in input size: the images at each size, and frozen
features (cached, made only when a run trains) of the backbones that need them.

    wanted = [((224, 224), ("mobilenet_v2", "map"), spec), ((150, 150), None, None)]  # a head, a CNN on images
    inputs = sized_inputs(lambda size: preprocessed_at(images, size, "grayscale", 1 / 255), labels, wanted, cache)
    inputs["images"][(150, 150)], inputs["features"][("mobilenet_v2", "map")], inputs["specs"][...]
"""


def preprocessed_at(images, size, color_mode, scale, batch_size=64):
    """`images` as a saved model sees them at `size`: `preprocessing.ImagePreprocessing(size, color_mode, scale)`
    (resized, in `color_mode`, e.g. "grayscale", multiplied by `scale`, e.g. 1 / 255 for [0, 1]), float32.

    (`medcnn.data.image_sets.images_at` is another thing: a data set's uint8 images at a size, before preprocessing.)
    """
    from medcnn.preprocessing import ImagePreprocessing, preprocess_images

    layer = ImagePreprocessing(tuple(size), color_mode, scale)
    return preprocess_images(images, layer, batch_size=batch_size)


def sized_inputs(images_of, labels, wanted, cache, log=print):
    """{"images": {size: images_of(size)}, "features": {key: `features.feature_inputs`}, "specs": {key: spec}}.

    Args:
        images_of: size -> the images at that size (e.g. with `preprocessed_at`), called once per size.
        labels: the labels of the images.
        wanted: (size, key, spec) per run: the input size it reads and, for a run on features, the key its
            features go under and their `FeatureSpec` (extracted from the images at `size`, its first output);
            key and spec None for a run on images.
        cache, log: as `features.extract` takes them.
    """
    from medcnn.experiment.features import feature_inputs

    inputs = {"images": {}, "features": {}, "specs": {}}
    for size, key, spec in wanted:
        size = tuple(size)
        if size not in inputs["images"]:
            inputs["images"][size] = images_of(size)
        if spec is not None:
            inputs["specs"][key] = spec
            images, output = inputs["images"][size], spec.outputs[0]
            inputs["features"][key] = feature_inputs(spec, images, labels, cache, output=output, log=log)
    return inputs
