"""Every custom Keras layer medcnn defines, in one place, so that loading a saved model finds them all.

Keras finds a custom layer of a `.keras` file only when the module defining it has been imported (its
`@keras.saving.register_keras_serializable(package="medcnn")` decorator has run). Importing this module imports
every such module; `medcnn.predict.load_model` does, and so should any other code that loads medcnn models:

    import medcnn.layers  # noqa: F401
    model = keras.saving.load_model("model.keras")

A new layer module must be added to `LAYER_MODULES`; `tests/test_cli.py` checks that none is missing.
"""

import importlib

# The modules that define registered layers (package "medcnn"), each imported below.
LAYER_MODULES = (
    "medcnn.preprocessing",
    "medcnn.augment",
    "medcnn.uncertainty",
    "medcnn.models.backbones",
    "medcnn.models.blocks",
    "medcnn.models.deformable",
    "medcnn.train",  # a metric, SparseF1Score, that a compiled model saves with it
)

for _module in LAYER_MODULES:
    importlib.import_module(_module)


def registered_layers():
    """{registered name, e.g. 'medcnn>ReverseChannels': class} of every medcnn layer known to Keras."""
    import keras

    return {
        name: cls
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("medcnn>") and isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    }
