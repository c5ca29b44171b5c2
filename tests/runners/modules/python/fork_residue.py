"""{"secret": s} returns {"echo": s}; {"scan": true} searches all of this process's readable
memory for an earlier call's secret ("executor-residue-" and six digits) and returns
{"found": [what matched]}. Fork mode must not leave an earlier call's request or response in
the parent's memory, which every later task process inherits."""

import re

# A character class: the pattern's own text never matches, so a hit is a real leftover.
SECRET = re.compile(rb"executor-residue-[0-9]{6}")


def execute(input):
    if "secret" in input:
        return {"echo": input["secret"]}
    with open("/proc/self/maps") as maps_file:
        maps = maps_file.read().splitlines()
    found = set()
    with open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or fields[-1] in ("[vvar]", "[vsyscall]"):
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            found.update(m.decode() for m in SECRET.findall(data))
            del data
    return {"found": sorted(found)}
