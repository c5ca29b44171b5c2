import os


def execute(input):
    """Write input["write"] ({relative path: text}) under input["dir"]; input["symlink"] names
    a symlink to make there. Returns the directory's entries before writing."""
    directory = input["dir"]
    found = sorted(os.listdir(directory)) if os.path.isdir(directory) else None
    for name, text in input.get("write", {}).items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    if input.get("symlink"):
        os.symlink("/etc/hostname", os.path.join(directory, input["symlink"]))
    return {"found": found}
