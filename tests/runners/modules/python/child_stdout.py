import os
import subprocess


def execute(input):
    subprocess.run(["sh", "-c", "echo child-wrote-fd1"], check=True)
    os.write(1, b"direct-wrote-fd1\n")
    return {"children": "done"}
