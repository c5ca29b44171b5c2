import sys


def execute(input):
    print("printed-to-stdout")
    sys.stdout.flush()
    return {"printed": True}
