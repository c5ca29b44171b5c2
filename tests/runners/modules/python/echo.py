def execute(input):
    return input
