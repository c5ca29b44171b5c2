"""Judging programs against the real engine: every language's verdicts (AC, WA, TLE by CPU and
by wall clock, MLE, RE, OLE, CE), comparisons, a checker in another language, tests isolated
from each other, and usage numbers checked against the program's own getrusage."""

from __future__ import annotations

from typing import Any

import pytest

from executor import (
    Checker,
    CodeExecutor,
    CodeRun,
    InputValidationError,
    TestCase,
)
from tests.container.test_runtime import require_runsc

from ._support import case, containers
from .conftest import JUDGE_IMAGE, NODE_IMAGE, PYTHON_IMAGE, config

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
#: Each language's programs: A+B right and wrong, a busy loop, a sleep, unbounded memory, a
#: segfault (or the language's nearest), an uncaught exception, unbounded output, a syntax error.
PROGRAMS: dict[str, dict[str, str]] = {
    "python": {
        "ac": "a, b = map(int, input().split())\nprint(a + b)",
        "wa": "a, b = map(int, input().split())\nprint(a + b + 1)",
        "busy": "while True:\n    pass",
        "sleep": "import time\ntime.sleep(100)",
        "memory": "x = []\nwhile True:\n    x.append(bytearray(1 << 20))",
        "segfault": "import ctypes\nctypes.string_at(0)",
        "exception": "raise RuntimeError('boom')",
        "output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
    },
    "bash": {
        "ac": "read a b\necho $((a + b))",
        "wa": "read a b\necho $((a + b + 1))",
        "busy": "while :; do :; done",
        "sleep": "sleep 100",
        # A command of the script, not the shell itself: its peak comes in the shell's rusage.
        "memory": "python3 -c 'x = bytearray(300 << 20); x[::4096] = bytes(len(x[::4096]))'",
        "segfault": "kill -SEGV $$",
        "exception": "exit 3",
        "output": "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    },
    "c": {
        "ac": '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);'
        'printf("%ld\\n",a+b);return 0;}',
        "wa": '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);'
        'printf("%ld\\n",a+b+1);return 0;}',
        "busy": "int main(void){volatile unsigned long x=0;for(;;)x++;}",
        "sleep": "#include <unistd.h>\nint main(void){sleep(100);return 0;}",
        "memory": "#include <stdlib.h>\n#include <string.h>\n"
        "int main(void){for(;;){char*p=malloc(1<<20);memset(p,1,1<<20);}}",
        "segfault": "int main(void){volatile int*p=0;*p=1;return 0;}",
        "exception": "#include <stdlib.h>\nint main(void){abort();}",
        "output": '#include <stdio.h>\nint main(void){for(;;)fputs("xxxxxxxxxxxxxxxx\\n",stdout);}',
        "ce": "int main(void){ return x; }",
    },
    "cpp": {
        "ac": "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;"
        'std::cout<<a+b<<"\\n";}',
        "wa": "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;"
        'std::cout<<a+b+1<<"\\n";}',
        "busy": "int main(){volatile unsigned long x=0;for(;;)x++;}",
        "sleep": "#include <thread>\n#include <chrono>\n"
        "int main(){std::this_thread::sleep_for(std::chrono::seconds(100));}",
        "memory": "#include <vector>\n#include <cstring>\nint main(){std::vector<char*> v;"
        "for(;;){char*p=new char[1<<20];std::memset(p,1,1<<20);v.push_back(p);}}",
        "segfault": "int main(){volatile int*p=nullptr;*p=1;}",
        "exception": '#include <stdexcept>\nint main(){throw std::runtime_error("boom");}',
        "output": '#include <cstdio>\nint main(){for(;;)std::fputs("xxxxxxxxxxxxxxxx\\n",stdout);}',
        "ce": "int main(){ std::vector<int> v; }",
    },
    "rust": {
        "ac": "use std::io::Read;\nfn main(){let mut s=String::new();"
        "std::io::stdin().read_to_string(&mut s).unwrap();"
        "let v:Vec<i64>=s.split_whitespace().map(|x|x.parse().unwrap()).collect();"
        'println!("{}",v[0]+v[1]);}',
        "wa": "use std::io::Read;\nfn main(){let mut s=String::new();"
        "std::io::stdin().read_to_string(&mut s).unwrap();"
        "let v:Vec<i64>=s.split_whitespace().map(|x|x.parse().unwrap()).collect();"
        'println!("{}",v[0]+v[1]+1);}',
        "busy": "fn main(){let mut x:u64=0;"
        "loop{unsafe{std::ptr::write_volatile(&mut x,x.wrapping_add(1));}}}",
        "sleep": "fn main(){std::thread::sleep(std::time::Duration::from_secs(100));}",
        "memory": "fn main(){let mut v:Vec<Vec<u8>>=Vec::new();loop{v.push(vec![1u8;1<<20]);}}",
        "segfault": "fn main(){unsafe{std::ptr::write_volatile(std::ptr::null_mut::<i32>(),1);}}",
        "exception": 'fn main(){panic!("boom");}',
        "output": 'fn main(){loop{println!("xxxxxxxxxxxxxxxx");}}',
        "ce": 'fn main(){ let x: i32 = "a"; }',
    },
    "go": {
        "ac": 'package main\nimport "fmt"\nfunc main(){var a,b int64;fmt.Scan(&a,&b);'
        "fmt.Println(a+b)}",
        "wa": 'package main\nimport "fmt"\nfunc main(){var a,b int64;fmt.Scan(&a,&b);'
        "fmt.Println(a+b+1)}",
        "busy": "package main\nfunc main(){for{}}",
        "sleep": 'package main\nimport "time"\nfunc main(){time.Sleep(100*time.Second)}',
        "memory": "package main\nvar v [][]byte\nfunc main(){for{b:=make([]byte,1<<20);"
        "for i:=range b{b[i]=1};v=append(v,b)}}",
        "segfault": "package main\nfunc main(){var p *int;*p=1}",
        "exception": 'package main\nfunc main(){panic("boom")}',
        "output": 'package main\nimport "fmt"\nfunc main(){for{fmt.Println("xxxxxxxxxxxxxxxx")}}',
        "ce": "package main\nfunc main(){ x := }",
    },
    "java": {
        "ac": "import java.util.*;\npublic class Main{public static void main(String[] a){"
        "Scanner s=new Scanner(System.in);long x=s.nextLong(),y=s.nextLong();"
        "System.out.println(x+y);}}",
        "wa": "import java.util.*;\npublic class Main{public static void main(String[] a){"
        "Scanner s=new Scanner(System.in);long x=s.nextLong(),y=s.nextLong();"
        "System.out.println(x+y+1);}}",
        "busy": "public class Main{public static void main(String[] a){long x=0;"
        "while(true){x++;}}}",
        "sleep": "public class Main{public static void main(String[] a) throws Exception{"
        "Thread.sleep(100000);}}",
        "memory": "import java.util.*;\npublic class Main{public static void main(String[] a){"
        "List<long[]> l=new ArrayList<>();while(true)l.add(new long[1<<17]);}}",
        "exception": "public class Main{public static void main(String[] a){"
        'throw new RuntimeException("boom");}}',
        "output": "public class Main{public static void main(String[] a){"
        "java.io.PrintStream o=new java.io.PrintStream("
        "new java.io.BufferedOutputStream(System.out,1<<16),false);"
        'while(true)o.println("xxxxxxxxxxxxxxxx");}}',
        "ce": "public class Main{ int x = ; }",
    },
    # Node runs in its own image (runners/node/code.mjs judges there); no compile step.
    "node": {
        "ac": 'const [a, b] = require("fs").readFileSync(0, "utf8").split(/\\s+/).map(Number);\n'
        "console.log(a + b);",
        "wa": 'const [a, b] = require("fs").readFileSync(0, "utf8").split(/\\s+/).map(Number);\n'
        "console.log(a + b + 1);",
        "busy": "for (;;) {}",
        "sleep": "setTimeout(() => {}, 100000);",
        "memory": "const x = [];\nfor (;;) x.push(Buffer.alloc(1 << 20, 1));",
        "segfault": 'process.kill(process.pid, "SIGSEGV");',
        "exception": 'throw new Error("boom");',
        "output": 'for (;;) process.stdout.write("x".repeat(65536));',
    },
}
EXPECTED = {
    "ac": "AC",
    "wa": "WA",
    "busy": "TLE",
    "sleep": "TLE",
    "memory": "MLE",
    "segfault": "RE",
    "exception": "RE",
    "output": "OLE",
    "ce": "CE",
}
TESTS = [TestCase("1 2\n", "3\n"), TestCase("40 2\n", "42\n")]


def image_of(language: str) -> str:
    """The image that runs ``language``'s programs."""
    if language == "node":
        return NODE_IMAGE
    return PYTHON_IMAGE if language in ("python", "bash") else JUDGE_IMAGE


@pytest.fixture(params=[None, "runsc"], ids=["runc", "runsc"])
def runtime(request: pytest.FixtureRequest) -> str | None:
    """The OCI runtime: the engine's default, then gVisor (skipped when not registered)."""
    if request.param == "runsc":
        require_runsc()
    return request.param  # type: ignore[no-any-return]


def judge(language: str, runtime: str | None = None, **kwargs: Any) -> CodeExecutor:
    """A CodeExecutor for ``language`` in its image (or ``image=``), room to compile."""
    image = kwargs.pop("image", None) or image_of(language)
    kwargs.setdefault("memory_bytes", 1024 * MiB)
    kwargs.setdefault("timeout", 120.0)
    # Small: under gVisor a program writing line by line is slow to reach a larger cap.
    kwargs.setdefault("max_output_bytes", 64 * 1024)
    kwargs.setdefault("pids_limit", 256)
    return CodeExecutor(language, config(image, runtime=runtime, **kwargs))


@pytest.mark.parametrize("language", [*PROGRAMS, "node@judge"])
async def test_every_verdict_in_every_language(language: str, runtime: str | None) -> None:
    """Each language's programs get their verdict: AC, WA, TLE for a busy loop (CPU) and a
    sleep (wall clock, said so), MLE, RE for a crash and an uncaught exception, OLE, and CE
    with the compiler's message for the compiled ones; compiled once, usage on every test.
    ``node@judge``: Node programs in the judge image (its code runner, code.py, runs node)."""
    labels = case()
    language, _, where = language.partition("@")
    image = JUDGE_IMAGE if where == "judge" else None
    # The JVM and Node start bigger (Node's own resident set is ~100 MB under gVisor).
    memory = 256 * MiB if language in ("java", "node") else 64 * MiB
    # Node and the JVM under gVisor on a loaded machine need more than a second of CPU to start
    # and fill their memory (page faults are dear there; the JVM's start-up alone took ~0.9 s of
    # CPU in a CI run, and its output program got TLE before OLE).
    seconds = 2.0 if language in ("node", "java") else 1.0
    async with judge(language, runtime, labels=labels, image=image) as ex:
        for name, code in PROGRAMS[language].items():
            run = CodeRun(code, tests=TESTS, time_limit=seconds, memory_limit=memory)
            result = await ex.execute(run)
            want = EXPECTED[name]
            got = [test.verdict for test in result.tests]
            assert result.verdict == want, (name, result.verdict, result.tests, result.compile)
            if want == "CE":
                assert result.compile is not None and not result.compile.ok
                assert result.compile.stderr and result.tests == []
                continue
            assert got == [want, want], (name, got, result.tests)
            if language not in ("python", "bash", "node"):
                assert result.compile is not None and result.compile.ok
            for test in result.tests:
                assert test.usage.cpu_time is not None and test.usage.peak_memory
                assert test.usage.wall_time is not None
            if name == "sleep":
                assert all("wall" in test.message for test in result.tests)
            if name == "segfault" and language in ("c", "cpp", "rust", "bash", "node"):
                assert all("SIGSEGV" in test.message for test in result.tests)
            if name == "ac":
                assert [test.stdout.strip() for test in result.tests] == ["3", "42"]
    assert not containers(labels)


async def test_comparisons_and_stop_on_first_failure() -> None:
    """exact, lines, tokens and float compare as judges do; a checker-free test without an
    expected output passes when the program ends well; stop_on_first_failure stops."""
    program = "import sys\nprint(sys.stdin.read().strip(), end=' \\n\\n')"
    async with judge("python") as ex:

        async def verdicts(compare: str, *tests: TestCase, **kw: Any) -> list[str]:
            result = await ex.execute(CodeRun(program, tests=list(tests), compare=compare, **kw))
            return [test.verdict for test in result.tests]

        same = TestCase("1 2", "1 2\n")
        spaced = TestCase("1 2", "1   2")
        assert await verdicts("exact", same, TestCase("1 2", "1 2 \n\n")) == ["WA", "AC"]
        assert await verdicts("lines", same, spaced) == ["AC", "WA"]
        assert await verdicts("tokens", same, spaced) == ["AC", "AC"]
        close = TestCase("0.3333333", "0.333333")
        far = TestCase("0.3334", "0.333333")
        assert await verdicts("tokens", close) == ["WA"]
        assert await verdicts("float", close, far, float_tolerance=1e-6) == ["AC", "WA"]
        assert await verdicts("float", TestCase("1e9 x", "1000000001 x"), float_tolerance=1e-6) == [
            "AC"
        ]
        assert await verdicts("tokens", TestCase("anything")) == ["AC"]
        stop = await verdicts("tokens", TestCase("1", "2"), same, stop_on_first_failure=True)
        assert stop == ["WA"]


NODE_CHECKER = """
const fs = require("node:fs");
const [input, output, answer] = process.argv.slice(2).map((p) => fs.readFileSync(p, "utf8"));
const [a, b] = input.trim().split(/\\s+/).map(Number);
const got = Number(output.trim());
if (output.trim() === "" || got !== a + b || got !== Number(answer)) {
  console.log(`got ${output.trim()}`);
  process.exit(1);
}
console.log(`ok ${got}`);
"""


async def test_node_program_with_a_javascript_checker(runtime: str | None) -> None:
    """A JavaScript checker judges a Node program in the Node image: given input, output and
    answer files, its exit status decides AC or WA and what it prints is the test's message."""
    program = (
        "const [a, b] = require('node:fs').readFileSync(0, 'utf8').trim().split(/\\s+/)"
        ".map(Number);\nconsole.log(a < 10 ? a + b : 0);"
    )
    labels = case()
    async with judge("node", runtime, labels=labels) as ex:
        result = await ex.execute(
            CodeRun(
                program,
                tests=[TestCase("1 2\n", "3\n"), TestCase("40 2\n", "42\n")],
                checker=Checker(NODE_CHECKER, language="node"),
            )
        )
    assert [(t.verdict, t.message) for t in result.tests] == [("AC", "ok 3"), ("WA", "got 0")]
    assert result.verdict == "WA"
    assert not containers(labels)


PYTHON_CHECKER = """
import sys
given, output, answer = (open(path).read() for path in sys.argv[1:4])
a, b = map(int, given.split())
got = output.strip()
if not got.lstrip("-").isdigit() or int(got) != a + b or int(got) != int(answer):
    print("got", got or "nothing")
    sys.exit(1)
print("ok", got)
"""
CPP_CHECKER = r"""
#include <fstream>
#include <iostream>
int main(int argc, char** argv) {
    std::ifstream in(argv[1]), out(argv[2]), ans(argv[3]);
    long a, b, got, want;
    in >> a >> b; ans >> want;
    if (!(out >> got)) { std::cout << "got nothing"; return 1; }
    if (got != a + b || got != want) { std::cout << "got " << got; return 1; }
    std::cout << "ok " << got;
    return 0;
}
"""
#: Right for small inputs, 0 for the second test's: AC then WA, whoever checks.
A_PLUS_B = {
    "node": (
        "const [a, b] = require('node:fs').readFileSync(0, 'utf8').trim().split(/\\s+/)"
        ".map(Number);\nconsole.log(a < 10 ? a + b : 0);"
    ),
    # An ES module (main.mjs): import statements are told apart as code.mjs does.
    "node-esm": (
        "import { readFileSync } from 'node:fs';\n"
        "const [a, b] = readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
        "console.log(a < 10 ? a + b : 0);"
    ),
    "python": "a, b = map(int, input().split())\nprint(a + b if a < 10 else 0)",
    "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;"
    "std::cout<<(a<10?a+b:0)<<std::endl;}",
}
CHECKERS = {"python": PYTHON_CHECKER, "cpp": CPP_CHECKER, "node": NODE_CHECKER}


@pytest.mark.parametrize(
    ("program", "checker"),
    [
        ("node", "python"),
        ("node-esm", "cpp"),
        ("python", "cpp"),
        ("python", "node"),
        ("cpp", "node"),
        ("node", "node"),
    ],
)
async def test_the_judge_image_takes_a_checker_in_any_language(
    program: str, checker: str, runtime: str | None
) -> None:
    """In the judge image a program in any language is judged by a checker in any language:
    a Node program (CommonJS or an ES module) by a Python or C++ checker, a Python or C++
    program by a JavaScript one; every mode's call leaves no container behind."""
    labels = case()
    language = program.partition("-")[0]
    async with judge(language, runtime, labels=labels, image=JUDGE_IMAGE, mode="fork") as ex:
        result = await ex.execute(
            CodeRun(
                A_PLUS_B[program],
                tests=[TestCase("1 2\n", "3\n"), TestCase("40 2\n", "42\n")],
                checker=Checker(CHECKERS[checker], language=checker),
                time_limit=2.0,
            )
        )
    assert [(t.verdict, t.message) for t in result.tests] == [("AC", "ok 3"), ("WA", "got 0")]
    assert result.verdict == "WA"
    assert all(t.usage.cpu_time is not None for t in result.tests)
    assert not containers(labels)


@pytest.mark.parametrize("image", ["node", "judge"])
async def test_a_node_program_flooding_its_output_is_ole_past_any_buffer(image: str) -> None:
    """Node queues what a non-blocking pipe or socket refuses in memory; its code runners make
    the program's output block instead, so a flood reaches an output limit far above the
    pipe's or socket's buffer (OLE), as in every other language, not the memory limit."""
    flood = 'for (;;) process.stdout.write("x".repeat(65536));'
    where = JUDGE_IMAGE if image == "judge" else NODE_IMAGE
    async with judge("node", image=where, max_output_bytes=4 * MiB) as ex:
        result = await ex.execute(
            CodeRun(flood, tests=TESTS[:1], time_limit=5.0, memory_limit=512 * MiB)
        )
    assert result.verdict == "OLE", result.tests
    assert result.tests[0].usage.peak_memory < 400 * MiB


async def test_tests_cannot_see_each_other() -> None:
    """Every test runs in a fresh copy of the program's directory: a file written by one test
    is gone for the next, and no test's input or expected output is on disk to find."""
    program = """
import os, sys
secret = sys.stdin.read().strip()
found = []
for root, dirs, files in os.walk("/tmp"):
    for name in files:
        try:
            data = open(os.path.join(root, name), "rb").read()
        except OSError:
            continue
        if ("SEC" + "RET-").encode() in data:
            found.append(name)
print("note" if os.path.exists("note.txt") else "fresh", sorted(found))
open("note.txt", "w").write(secret)
"""
    tests = [TestCase(f"SECRET-{i}", f"fresh []\nSECRET-{i}-expected") for i in range(3)]
    async with judge("python") as ex:
        result = await ex.execute(CodeRun(program, tests=tests, compare="exact"))
    assert [t.stdout for t in result.tests] == ["fresh []\n"] * 3, result.tests


async def test_usage_matches_the_programs_own_getrusage() -> None:
    """A test's cpu_time and peak_memory are within 20% of what the program's own getrusage
    says in the same container (wall time covers the CPU time)."""
    program = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
int main(void) {
    size_t n = 100u << 20;
    char *p = malloc(n); memset(p, 7, n);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 400000000ul; i++) x += p[i % n];
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    printf("%f %ld\n", r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6
                       + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6, r.ru_maxrss * 1024L);
    return 0;
}
"""
    async with judge("c") as ex:
        result = await ex.execute(CodeRun(program, tests=[TestCase("")], time_limit=30.0))
    test = result.tests[0]
    assert test.verdict == "AC", test
    own_cpu, own_peak = (float(v) for v in test.stdout.split())
    assert test.usage.cpu_time == pytest.approx(own_cpu, rel=0.2)
    assert test.usage.peak_memory == pytest.approx(own_peak, rel=0.2)
    assert test.usage.wall_time is not None and test.usage.wall_time >= own_cpu * 0.8
    assert result.usage is not None and result.usage.cpu_time == pytest.approx(own_cpu, rel=0.2)


async def test_usage_matches_what_usr_bin_time_reports(runtime: str | None) -> None:
    """A test's cpu_time and peak_memory are within 20% of what /usr/bin/time -v's counters
    (user + system time, maximum resident set size) say of the same run, in the same container,
    under runc and gVisor: the test's process execs /usr/bin/time on the compiled program (one
    run measured twice: two runs of it differ by more than 20% on a loaded machine)."""
    program = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void work(void) {
    size_t n = 100u << 20;
    char *p = malloc(n); memset(p, 7, n);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 300000000ul; i++) x += p[i % n];
}
int main(int argc, char **argv) {
    char mode[16] = "";
    if (argc < 2 && scanf("%15s", mode) == 1 && strcmp(mode, "timed") == 0) {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len < 0) return 2;
        self[len] = 0;
        fflush(stdout);
        execl("/usr/bin/time", "time", "-f", "%U %S %M", "-o", "/dev/stdout", self, "inner",
              (char *)0);
        return 127;
    }
    work();
    return 0;
}
"""
    async with judge("c", runtime) as ex:
        result = await ex.execute(CodeRun(program, tests=[TestCase("timed")], time_limit=30.0))
    (timed,) = result.tests
    assert timed.verdict == "AC", result.tests
    user, system, max_rss_kib = timed.stdout.split()
    assert timed.usage.cpu_time == pytest.approx(float(user) + float(system), rel=0.2)
    assert timed.usage.peak_memory == pytest.approx(int(max_rss_kib) * 1024, rel=0.2)


async def test_node_usage_matches_the_programs_own_resource_usage() -> None:
    """A Node test's cpu_time and peak_memory are within 20% of the program's own
    process.resourceUsage(); a plain Node run reports usage too, and a time limit gives it a
    verdict."""
    program = """
const block = Buffer.alloc(100 << 20, 7);
let x = 0;
const start = process.cpuUsage();
while (process.cpuUsage(start).user < 400000) x += block[x % block.length];
const u = process.resourceUsage();
console.log((u.userCPUTime + u.systemCPUTime) / 1e6, u.maxRSS * 1024);
"""
    async with judge("node") as ex:
        result = await ex.execute(CodeRun(program, tests=[TestCase("")], time_limit=30.0))
        plain = await ex.execute(CodeRun(program))
        limited = await ex.execute(CodeRun("for (;;) {}", time_limit=0.5))
    test = result.tests[0]
    assert test.verdict == "AC", test
    own_cpu, own_peak = (float(v) for v in test.stdout.split())
    assert test.usage.cpu_time == pytest.approx(own_cpu, rel=0.2)
    assert test.usage.peak_memory == pytest.approx(own_peak, rel=0.2)
    assert test.usage.wall_time is not None and test.usage.wall_time >= own_cpu * 0.8
    assert plain.usage is not None and plain.usage.cpu_time and plain.usage.peak_memory
    assert plain.verdict is None and plain.tests == []
    assert limited.verdict == "TLE" and limited.usage is not None and limited.usage.cpu_time


async def test_plain_runs_report_usage_and_compile() -> None:
    """A run without tests reports its usage; a compiled one its compile step too, and a
    compile error is a result (verdict CE, exit_code -1), not an exception."""
    async with judge("python") as ex:
        result = await ex.execute(CodeRun("print(sum(range(10**6)))"))
    assert result.usage is not None and result.usage.cpu_time and result.usage.peak_memory
    assert result.compile is None and result.verdict is None
    async with judge("cpp") as ex:
        ok = await ex.execute(CodeRun('#include <cstdio>\nint main(){std::puts("hi");}'))
        bad = await ex.execute(CodeRun("int main(){ nope; }"))
    assert ok.stdout == "hi\n" and ok.compile is not None and ok.compile.ok and ok.files == {}
    assert bad.verdict == "CE" and bad.exit_code == -1 and bad.compile is not None
    assert "nope" in bad.compile.stderr


async def test_fork_mode_judges_too() -> None:
    """In fork mode the container stays and every test is a fresh process: same verdicts."""
    async with judge("python", mode="fork") as ex:
        for _ in range(2):
            result = await ex.execute(
                CodeRun(PROGRAMS["python"]["ac"], tests=TESTS, time_limit=1.0)
            )
            assert [t.verdict for t in result.tests] == ["AC", "AC"]


def test_bad_judging_inputs_are_refused() -> None:
    """Bad limits, comparisons and checkers, and a checker its program's image cannot run (a
    Node program's in another language than JavaScript in the Node image, a Node checker in
    the Python image), are InputValidationError with the path of the problem, naming the judge
    image that runs them; the judge image takes any checker."""
    ex = CodeExecutor("python", config(PYTHON_IMAGE))
    for bad, path in (
        (CodeRun("x", time_limit=-1), "$.time_limit"),
        (CodeRun("x", memory_limit=10), "$.memory_limit"),
        (CodeRun("x", compare="fuzzy"), "$.compare"),
        (CodeRun("x", tests=["1"]), "$.tests[0]"),  # type: ignore[list-item]
        (CodeRun("x", checker=Checker("x", language="cobol")), "$.checker.language"),
        ({"code": "x", "tests": [{"stdin": 1}]}, "$.tests[0].stdin"),
    ):
        with pytest.raises(InputValidationError) as info:
            ex._task(bad)
        assert info.value.path == path
    node = CodeExecutor("node", config(NODE_IMAGE))
    judged = f"ContainerConfig({CodeExecutor.image_for('judge')!r})"
    with pytest.raises(InputValidationError, match="language='node'") as info:
        node._task(CodeRun("x", tests=TESTS, checker=Checker("print(1)")))
    assert info.value.path == "$.checker.language" and info.value.code == "INPUT_INVALID"
    assert f"CodeExecutor('node', {judged})" in info.value.message
    with pytest.raises(InputValidationError, match="no Node") as info:
        ex._task(CodeRun("x", tests=TESTS, checker=Checker("x", language="node")))
    assert info.value.path == "$.checker.language"
    assert f"CodeExecutor('python', {judged})" in info.value.message
    for language in ("node", "python", "cpp"):
        judging = CodeExecutor(language, config(JUDGE_IMAGE))
        for checker in ("node", "python", "cpp"):
            task, _ = judging._task(CodeRun("x", tests=TESTS, checker=Checker("x", checker)))
            assert task.checker is not None and task.checker.language == checker


BURN = """
import time

def execute(input):
    start = time.process_time()
    block = bytearray(input["mib"] << 20)
    block[::4096] = b"x" * len(block[::4096])
    total = 0
    while time.process_time() - start < input["seconds"]:
        total += 1
    return {"cpu": time.process_time() - start}
"""


@pytest.mark.parametrize("mode", ["fresh", "fork", "reuse"])
async def test_every_container_call_reports_usage(make_executor: Any, mode: str) -> None:
    """Execution.usage of an ordinary call, in every mode: the task's CPU time within 20% of
    its own process_time, its peak memory at least what it touched, a wall time."""
    settings: dict[str, Any] = {"fresh": {}, "fork": {"mode": "fork"}, "reuse": {"mode": "reuse"}}
    ex = make_executor(files={"/app/execute.py": BURN}, **settings[mode])
    for _ in range(2):
        result = await ex.run({"seconds": 0.3, "mib": 40})
        usage = result.usage
        assert usage is not None and usage.cpu_time is not None, result
        assert usage.cpu_time == pytest.approx(result.output["cpu"], rel=0.2)
        assert usage.peak_memory is not None and usage.peak_memory >= 40 * MiB
        assert usage.wall_time is not None and usage.wall_time >= usage.cpu_time * 0.8
