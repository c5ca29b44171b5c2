/* executor-spawn: run a program as the child of a small process, so that its ru_maxrss is its
 * own. A child forked from the Python code runner starts with the runner's resident pages,
 * and the kernel keeps that high-water mark across exec; forked from this static binary it
 * starts with a few pages.
 *
 *   executor-spawn FD PROGRAM [ARG...]
 *
 * The program runs in a session of its own (its pid is its process group: the code runner
 * kills that group, and this process lives on to reap it). Written to FD: "PID\n" once the
 * program runs, then "STATUS UTIME STIME MAXRSS_KB\n" (wait4) when it ended; then exit 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("usage: executor-spawn FD PROGRAM [ARG...]\n", stderr);
        return 2;
    }
    int fd = atoi(argv[1]);
    pid_t pid = fork();
    if (pid < 0) {
        perror("executor-spawn: fork");
        return 2;
    }
    if (pid == 0) {
        close(fd);
        setsid();
        execvp(argv[2], argv + 2);
        perror("executor-spawn: exec");
        _exit(127);
    }
    dprintf(fd, "%d\n", (int)pid);
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("executor-spawn: wait4");
            return 2;
        }
    }
    dprintf(fd, "%d %ld.%06ld %ld.%06ld %ld\n", status, (long)ru.ru_utime.tv_sec,
            (long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
            ru.ru_maxrss);
    return 0;
}
