"""The data layer, in pipeline order: paths (where data sets live), imageio (decoding with clear errors),
loaders (folders, C-NMC, npz, chromosomes; pbc: the PBC download and class draw; karyogram_pool: kth's karyograms),
validate (a report of every problem), splits (stratified and grouped, with a leakage check), cleaning (duplicates,
outliers), labels (class weights), offline_augment, pipeline (tf.data / PyDataset).

Importing this package is light: no Keras or TensorFlow (only `pipeline` and `offline_augment` import Keras;
`imageio.read_image` imports it when a file needs resizing, so that it resizes as a saved model does).
"""
