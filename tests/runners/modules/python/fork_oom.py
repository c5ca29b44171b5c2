def execute(input):
    if not input.get("grow"):
        return {"grew": False}
    chunks = []
    while True:  # allocate and touch memory without bound
        chunks.append(b"\x01" * (1 << 20))
