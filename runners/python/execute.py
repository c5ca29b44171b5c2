"""The default task of the Python runner image: return the input unchanged.

Replace it by mounting your own file at /app/execute.py (or building FROM this image).
"""


def execute(input):
    return input
