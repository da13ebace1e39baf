"""The one error type users see: a problem in their input, named by where it is."""

from __future__ import annotations


class FedrobustError(Exception):
    """A problem with user input (scenario field, file, CLI argument).

    Parameters
    ----------
    where : str
        The offending place: a dotted scenario path (``data.partition.alpha``),
        a file path, or a CLI option.
    what : str
        What is wrong, in one sentence.
    """

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what
