import time


def execute(input):
    time.sleep(input["seconds"])
    return {"slept": input["seconds"]}
