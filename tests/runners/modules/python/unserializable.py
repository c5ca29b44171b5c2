def execute(input):
    return {"a set": {1, 2, 3}}
