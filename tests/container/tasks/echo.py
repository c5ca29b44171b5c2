"""An echo task, mounted where the Python runner looks (the stock image has no task)."""


def execute(input):
    return input
