def something_else(input):
    return input
