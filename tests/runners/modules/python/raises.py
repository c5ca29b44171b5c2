def helper(value):
    raise ValueError(f"boom: {value}")


def execute(input):
    return helper(input)
