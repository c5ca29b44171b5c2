import subprocess
import sys


def execute(input):
    # Neither the function nor a child inheriting stdin may swallow the next request.
    child = subprocess.run(["cat"], capture_output=True, check=True).stdout.decode()
    return {"read": sys.stdin.read(), "child": child, "n": input["n"]}
