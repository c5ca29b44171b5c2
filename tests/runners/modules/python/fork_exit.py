import os


def execute(input):
    if input.get("code") is None:
        return {"exited": False}
    os._exit(input["code"])  # at once: no response, no cleanup
