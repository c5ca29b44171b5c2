def execute(input):
    if input.get("fail"):
        raise RuntimeError("asked to fail")
    return {"n": input["n"]}
