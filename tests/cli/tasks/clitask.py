"""A module target for ``executor run clitask:square`` (run with this directory as cwd)."""


def square(input):
    return input * input
