"""The one exception type that data problems raise."""


class DataError(ValueError):
    """Bad or missing input data.

    The message always names the offending file or folder, says what was expected and how to fix it.
    `path` holds the file or folder concerned (or None), `problem` a short machine-readable tag.
    """

    def __init__(self, message, path=None, problem=None):
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.problem = problem
