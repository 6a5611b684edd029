"""A variant that changes nothing (tests/bench/intake_variants.py): its difference to the code
as it is, measured in the same run, is the run's noise."""


def apply(app) -> None:
    pass


def undo(app) -> None:
    pass
